"""``anyres_max`` in ``mmllava/models/llava.py`` (LLaVA-OneVision's
``anyres_max_N``), with transformers'
``LlavaOnevisionForConditionalGeneration`` (same weights, saved and reloaded
with ``from_pretrained``) as the judge: a tiny SigLIP-like tower and Qwen2,
photos of several shapes as transformers' own image processor prepares
them, some of them shrunk by the budget and some not; the image features
after the merge and the logits.

The recipe's settings are checked against the official ones: the
``"(1x1),...,(6x6)"`` expansion of LLaVA-NeXT's training code and the
defaults of transformers' ``LlavaOnevisionConfig`` (converted from the
released checkpoints)."""
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from PIL import Image
from skimage import data as photos
from transformers import (AutoTokenizer, LlavaOnevisionConfig,
                          LlavaOnevisionForConditionalGeneration,
                          LlavaOnevisionImageProcessorPil)

from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.conversation import build_generation_prompt
from mmllava.datasets.transforms.tokenize import AnyResTokenCount
from mmllava.models.anyres import (count_image_tokens, pinpoints_from_hf,
                                   pinpoints_from_official, pinpoints_to_hf)
from mmllava.registry import MODELS
from mmllava.templates import get_template
from mmllava.testing.demo.qwen_tokenizer import write_qwen_tokenizer

pytestmark = pytest.mark.usefixtures('one_thread')

RECIPE = Path(__file__).resolve().parents[2] / \
    'configs/llava/llava-onevision-siglip-so400m-qwen2-0.5b_si.py'
#: SO400M's patch size, a 56-px tile: 4 x 4 = 16 patches a tile.
TILE, PATCH = 56, 14
SIGLIP = dict(image_size=TILE, patch_size=PATCH, hidden_size=32,
              intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4)
#: Qwen2-0.5B's shape scaled down: tied embeddings, biased q/k/v.
QWEN = dict(model_type='qwen2', hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=2048,
            tie_word_embeddings=True)
#: Grids of 1x1 to 3x3 tiles, as the official range expands them.
PINPOINTS = [(rows * TILE, columns * TILE) for columns in range(1, 4)
             for rows in range(1, 4)]
#: A budget of 2 tiles (32 rows): an unpadded grid of more than 1.1 ** 2
#: x 32 rows shrinks.
ANYRES_MAX = 2
SIGLIP_MEAN = [0.5, 0.5, 0.5]


@pytest.fixture(scope='module')
def qwen_tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(
        write_qwen_tokenizer(str(tmp_path_factory.mktemp('qwen'))))


def build_model(tokenizer, vocab_size: int, seed: int = 0):
    """The tiny SigLIP + Qwen2 LLaVA with the OneVision image layout
    (``test_llava_onevision_hf.py`` exports it too)."""
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(type='SiglipVisionEncoder', config=SIGLIP,
                            select_layer=-2),
        llm=dict(type='HFCausalLM', config=dict(QWEN, vocab_size=vocab_size)),
        tokenizer=tokenizer, projector=dict(type='mlp2x_gelu'),
        template='qwen_1_5', image_aspect_ratio='anyres',
        image_grid_pinpoints=PINPOINTS, mm_patch_merge_type='spatial_unpad',
        anyres_max=ANYRES_MAX)).eval()
    with torch.no_grad():
        # A wider head (tied: the embedding too) and projector than the
        # default init give the images a clear effect on the logits.
        model.llm.get_output_embeddings().weight.normal_(0, 0.3)
        for parameter in model.projector.parameters():
            parameter.normal_(0, 0.3)
    return model


@pytest.fixture(scope='module')
def model(qwen_tokenizer):
    # One row past the tokenizer for transformers' image token.
    return build_model(qwen_tokenizer, len(qwen_tokenizer) + 1)


@pytest.fixture(scope='module')
def reference(model, tmp_path_factory, to_transformers_anyres):
    """transformers' LlavaOnevision with the model's weights, through
    ``save_pretrained`` / ``from_pretrained``."""
    config = LlavaOnevisionConfig(
        vision_config=model.vision_encoder.model.config.to_dict(),
        text_config=model.llm.config.to_dict(),
        image_token_index=model.llm.config.vocab_size - 1,
        image_grid_pinpoints=pinpoints_to_hf(PINPOINTS),
        vision_aspect_ratio=f'anyres_max_{ANYRES_MAX}',
        vision_feature_layer=-2, vision_feature_select_strategy='full',
        tie_word_embeddings=True)
    return to_transformers_anyres(
        model, LlavaOnevisionForConditionalGeneration, config,
        tmp_path_factory.mktemp('onevision'))


def photo(name, box=None):
    image = Image.fromarray(getattr(photos, name)()).convert('RGB')
    return image.crop(box) if box else image


#: (height, width) and what the budget does: astronaut 512x512 (3x3 grid,
#: 12x12 rows shrunk to 5x5), coffee 400x600 (2x3, 8x12 to 4x6), a 100x640
#: rocket strip (1x3, 2x12 unpadded: within budget) and a 50x60 crop of the
#: cat (1x2, 4x4 unpadded: within budget).
PHOTOS = {'astronaut': photo('astronaut'), 'coffee': photo('coffee'),
          'rocket strip': photo('rocket', (0, 150, 640, 250)),
          'cat crop': photo('chelsea', (200, 100, 260, 150))}


@pytest.fixture(scope='module')
def processed():
    """Each photo as transformers' LlavaOnevision image processor gives
    it (SigLIP's resize and normalisation)."""
    processor = LlavaOnevisionImageProcessorPil(
        size=dict(height=TILE, width=TILE), image_mean=SIGLIP_MEAN,
        image_std=SIGLIP_MEAN,
        image_grid_pinpoints=pinpoints_to_hf(PINPOINTS))
    return {name: processor(image, return_tensors='pt')
            for name, image in PHOTOS.items()}


def test_some_photos_shrink_and_some_do_not():
    shrunk = {name: count_image_tokens(
        (image.height, image.width), PINPOINTS, TILE, PATCH,
        'spatial_unpad', anyres_max=ANYRES_MAX) < count_image_tokens(
            (image.height, image.width), PINPOINTS, TILE, PATCH,
            'spatial_unpad') for name, image in PHOTOS.items()}
    assert shrunk == {'astronaut': True, 'coffee': True,
                      'rocket strip': False, 'cat crop': False}


def features_of(model, inputs):
    # (1, tiles, 3, S, S) -> (tiles, 3, S, S), the model's AnyRes input.
    return model.image_features(inputs['pixel_values'][0], [1],
                                inputs['image_sizes'])[0][0]


def test_image_features_match_transformers(model, reference, processed):
    """Shrunk or not; truncation (``AnyResTokenCount``) and
    the server (``image_token_count``) count their rows."""
    truncation_count = AnyResTokenCount(PINPOINTS, TILE, PATCH,
                                        'spatial_unpad',
                                        anyres_max=ANYRES_MAX)
    for name, inputs in processed.items():
        with torch.no_grad():
            ours = features_of(model, inputs)
            theirs, = reference.model.get_image_features(
                pixel_values=inputs['pixel_values'],
                image_sizes=inputs['image_sizes']).pooler_output
        assert ours.shape == theirs.shape, name
        diff = (ours - theirs).abs().max().item()
        assert diff <= 1e-6, f'{name}: max abs difference {diff}'
        size = tuple(inputs['image_sizes'][0].tolist())
        assert len(ours) == model.image_token_count(size) == \
            truncation_count(size)


def test_logits_match_transformers(model, reference, processed,
                                   qwen_tokenizer):
    """Every photo in one batch on our side (different numbers of image
    rows), one at a time on theirs, its prompt's image placeholder written
    as as many image tokens as transformers makes features."""
    prompt = build_generation_prompt(
        [{'from': 'human', 'value': '<image>\nWhat is in the picture?'}],
        get_template('qwen_1_5'), qwen_tokenizer, has_image=True)
    batch = model.data_preprocessor(dict(inputs=dict(
        input_ids=[torch.tensor(prompt)] * len(processed),
        pixel_values=[inputs['pixel_values'][0]
                      for inputs in processed.values()],
        image_sizes=[inputs['image_sizes'] for inputs in processed.values()])))
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
        without_images = model(**dict(batch, pixel_values=None,
                                      image_sizes=None,
                                      num_images=[0] * len(processed),
                                      input_ids=batch['input_ids'].clamp(0)),
                               mode='tensor')
    image_token_id = reference.config.image_token_id
    for index, (name, inputs) in enumerate(processed.items()):
        with torch.no_grad():
            rows = len(reference.model.get_image_features(
                pixel_values=inputs['pixel_values'],
                image_sizes=inputs['image_sizes']).pooler_output[0])
            ids = []
            for token in prompt:
                ids += [image_token_id] * rows \
                    if token == IMAGE_TOKEN_INDEX else [token]
            expected = reference(input_ids=torch.tensor([ids]),
                                 **inputs).logits[0]
        ours = logits[index, :len(expected)]
        diff = (ours - expected).abs().max().item()
        assert diff <= 1e-5, f'{name}: max abs logit difference {diff}'
        # The images matter.
        assert not torch.allclose(logits[index, -1],
                                  without_images[index, -1], atol=1e-2)


def test_recipe_is_llava_onevision():
    """The recipe's grids are the official "(1x1),...,(6x6)" as the
    official training code expands it (pairs (width, height), multiples
    of the tower's 384 px), and the same set as transformers'
    LlavaOnevision; its budget is the released models' ``anyres_max_9``."""
    cfg = Config.fromfile(str(RECIPE))
    # LLaVA-NeXT's train.py: (i, j) for i over the first numbers, j over the
    # second, each times the tower's image size.
    first, last = (1, 1), (6, 6)
    official = [[i * 384, j * 384] for i in range(first[0], last[0] + 1)
                for j in range(first[1], last[1] + 1)]
    assert cfg.model.image_grid_pinpoints == pinpoints_from_official(
        official)
    hf_config = LlavaOnevisionConfig()
    assert sorted(cfg.model.image_grid_pinpoints) == sorted(
        pinpoints_from_hf(hf_config.image_grid_pinpoints))
    assert hf_config.vision_aspect_ratio == \
        f'anyres_max_{cfg.model.anyres_max}'
    assert cfg.model.mm_patch_merge_type == 'spatial_unpad'
    # SigLIP (no CLS row): transformers keeps every token.
    assert hf_config.vision_feature_select_strategy == 'full'
    assert cfg.model.vision_encoder.type == 'SiglipVisionEncoder'
    assert cfg.model.vision_encoder.select_feature == 'patch'


def test_anyres_max_needs_an_unpadded_anyres_model(qwen_tokenizer):
    parts = dict(
        type='LLaVA', tokenizer=qwen_tokenizer,
        vision_encoder=dict(type='SiglipVisionEncoder', config=SIGLIP),
        llm=dict(type='HFCausalLM', config=dict(
            QWEN, vocab_size=len(qwen_tokenizer))))
    with pytest.raises(ValueError, match="to image_aspect_ratio='anyres'"):
        MODELS.build(dict(parts, anyres_max=9))
    with pytest.raises(ValueError, match="mm_patch_merge_type is 'spatial'"):
        MODELS.build(dict(parts, image_aspect_ratio='anyres',
                          image_grid_pinpoints=PINPOINTS,
                          mm_patch_merge_type='spatial', anyres_max=9))
    with pytest.raises(ValueError, match="mm_patch_merge_type is 'flat'"):
        AnyResTokenCount(PINPOINTS, TILE, PATCH, 'flat', anyres_max=9)
