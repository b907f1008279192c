"""Model and workload sizes of the benchmark: the full run and ``--quick``."""
from dataclasses import asdict, dataclass, field

#: CLIP's normalisation, as LLaVA-1.5 uses it (the pad colour is the mean).
IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
IMAGE_STD = (0.26862954, 0.26130258, 0.27577711)
#: The tokenizer's 32000 ids plus one row where transformers' Llava marks an
#: image; both models get this vocabulary so that their weights are equal.
VOCAB_SIZE = 32001
HF_IMAGE_TOKEN_ID = 32000


@dataclass
class Sizes:
    """What one benchmark run builds and measures.

    Args:
        vision (dict): ``CLIPVisionConfig`` kwargs.
        llm (dict): Llama config kwargs (with ``model_type``).
        num_samples (int): Training samples per epoch (a multiple of
            ``batch_size``).
        batch_size (int): Samples per optimizer step, every setting.
        epochs (int): Epochs of every training setting, interleaved.
        lr (float): AdamW learning rate.
        caption_tokens (tuple): Range of caption lengths in tokens.
        conversation_tokens (tuple): Range of conversation text lengths.
        fractions (tuple): Shares of captions, image conversations and
            text-only conversations.
        packing_max_length (int): Row length of mmllava's packed batches.
        new_tokens (int): Tokens generated per prompt.
        generation_rounds (int): Interleaved repeats of each generation run;
            its figures are their median and lowest.
        data_samples (int): Records read by each data path per round.
        data_rounds (int): Interleaved repeats of each data path.
        gemm_size (int): Side of the square matmul timed for the peak.
        anyres_steps (int): Training steps of the AnyRes-against-pad part.
        anyres_rounds (int): Interleaved repeats of those steps.
    """

    vision: dict
    llm: dict
    num_samples: int
    batch_size: int
    epochs: int
    lr: float = 1e-4
    caption_tokens: tuple = (10, 40)
    conversation_tokens: tuple = (50, 700)
    fractions: tuple = (0.3, 0.55, 0.15)
    packing_max_length: int = 2048
    new_tokens: int = 32
    generation_rounds: int = 3
    data_samples: int = 64
    data_rounds: int = 2
    gemm_size: int = 2048
    anyres_steps: int = 2
    anyres_rounds: int = 2
    image_processor: dict = field(init=False)

    def __post_init__(self) -> None:
        side = self.vision['image_size']
        self.image_processor = dict(
            type='CLIPImageProcessor', size=dict(shortest_edge=side),
            crop_size=dict(height=side, width=side),
            image_mean=list(IMAGE_MEAN), image_std=list(IMAGE_STD))
        if self.num_samples % self.batch_size:
            raise ValueError(f'num_samples {self.num_samples} is not a '
                             f'multiple of batch_size {self.batch_size}')

    @property
    def num_image_tokens(self) -> int:
        """Feature rows per image (CLS dropped)."""
        return (self.vision['image_size'] // self.vision['patch_size'])**2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> 'Sizes':
        values = dict(values)
        values.pop('image_processor')
        return cls(**values)


def llama(width: int, layers: int, heads: int, ffn: int) -> dict:
    return dict(model_type='llama', vocab_size=VOCAB_SIZE, hidden_size=width,
                intermediate_size=ffn, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=heads,
                max_position_embeddings=4096, bos_token_id=1,
                eos_token_id=2)


#: ViT 6 x 384 at 224 px / 14 (256 image tokens); Llama 8 x 512.
FULL = dict(
    vision=dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=6,
                num_attention_heads=6, image_size=224, patch_size=14),
    llm=llama(512, 8, 8, 1376),
    num_samples=24, batch_size=8, epochs=2, data_samples=256, data_rounds=3)

#: A smoke run for the tests: every code path, tiny tensors.
QUICK = dict(
    vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, image_size=32, patch_size=8),
    llm=llama(64, 2, 4, 128),
    num_samples=12, batch_size=4, epochs=2, caption_tokens=(10, 20),
    conversation_tokens=(30, 120), packing_max_length=512, new_tokens=4,
    generation_rounds=1, data_samples=8, data_rounds=1, gemm_size=256,
    anyres_steps=1, anyres_rounds=1)


def get_sizes(quick: bool, **overrides) -> Sizes:
    """The full or quick sizes, with command-line overrides (None: keep)."""
    values = dict(QUICK if quick else FULL)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Sizes(**values)
