"""What one gpu_check run builds: the check model (small, so that its CPU
twin runs each path too) and the 7B-width speed model, at full size (one
H100) and ``--tiny`` (the CPU test)."""
from dataclasses import dataclass, replace

from benchmark_parts.sizes import Sizes, llama

#: CLIP ViT-L/14 at 336 px (LLaVA-1.5's tower): 576 image tokens.
CLIP_L_336 = dict(hidden_size=1024, intermediate_size=4096,
                  num_hidden_layers=24, num_attention_heads=16,
                  image_size=336, patch_size=14)
TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, image_size=32, patch_size=8)


@dataclass(frozen=True)
class Plan:
    """Sizes and step counts of a run.

    Args:
        check (Sizes): The check model and its batches (``batch_size``
            samples a step, ``num_samples / batch_size`` steps).
        speed (Sizes): The speed model; ``llm['num_hidden_layers']`` is the
            most layers tried (fitted to the GPU's memory on CUDA).
        warmup_steps (int): Untimed training steps of each speed setting.
        timed_steps (int): Timed training steps of each speed setting.
        prompts (int): Generation prompts (the batch of batch 8).
        attempt_fit (bool): Fit the speed model's layers to the GPU (False:
            take ``speed.llm['num_hidden_layers']`` as it is).
    """

    check: Sizes
    speed: Sizes
    warmup_steps: int
    timed_steps: int
    prompts: int = 8
    attempt_fit: bool = True

    def to_dict(self) -> dict:
        return dict(check=self.check.to_dict(), speed=self.speed.to_dict(),
                    warmup_steps=self.warmup_steps,
                    timed_steps=self.timed_steps, prompts=self.prompts,
                    attempt_fit=self.attempt_fit)


FULL = Plan(
    # 4 x 512 Llama (FFN 1376), ViT 4 x 256 at 112 px / 14 (64 image
    # tokens): a second or less a step for the CPU twin.
    check=Sizes(
        vision=dict(hidden_size=256, intermediate_size=1024,
                    num_hidden_layers=4, num_attention_heads=4,
                    image_size=112, patch_size=14),
        llm=llama(512, 4, 8, 1376), num_samples=32, batch_size=8, epochs=1,
        conversation_tokens=(40, 300), packing_max_length=1024,
        new_tokens=16),
    # LLaMA-7B's width (Vicuna-7B: 4096 wide, 32 heads, FFN 11008), up to
    # its 32 layers; LLaVA-1.5's tower. 8 samples a step (4.5k-6.6k real
    # positions; transformers' padded batch keeps its activations, and the
    # layers that fit, within reach), packed into rows of 4096.
    speed=Sizes(
        vision=CLIP_L_336, llm=llama(4096, 32, 32, 11008), num_samples=48,
        batch_size=8, epochs=1, conversation_tokens=(50, 700),
        packing_max_length=4096, new_tokens=32, gemm_size=8192),
    warmup_steps=2, timed_steps=4)

#: The CPU test's sizes: every path and figure, tiny tensors.
TINY = Plan(
    check=Sizes(vision=TINY_VISION, llm=llama(64, 2, 4, 128), num_samples=12,
                batch_size=4, epochs=1, conversation_tokens=(10, 40),
                packing_max_length=256, new_tokens=4),
    speed=Sizes(vision=TINY_VISION, llm=llama(96, 2, 4, 256), num_samples=12,
                batch_size=4, epochs=1, conversation_tokens=(10, 60),
                packing_max_length=256, new_tokens=4, gemm_size=256),
    warmup_steps=1, timed_steps=2, attempt_fit=False)


def get_plan(tiny: bool) -> Plan:
    return TINY if tiny else FULL


def check_steps(sizes: Sizes) -> int:
    return sizes.num_samples // sizes.batch_size


def with_layers(sizes: Sizes, layers: int) -> Sizes:
    """``sizes`` with an LLM of ``layers`` layers."""
    return replace(sizes, llm=dict(sizes.llm, num_hidden_layers=layers))
