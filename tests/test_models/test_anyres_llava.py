"""AnyRes in ``mmllava/models/llava.py``, with transformers'
``LlavaNextForConditionalGeneration`` (same weights, saved and reloaded with
``from_pretrained``) as the judge: logits, loss and greedy generation on real
photos of different aspect ratios, in one batch with a different number of
image tokens per sample."""
import pytest
import torch
from mmengine.dataset import Compose, pseudo_collate
from PIL import Image
from skimage import data as photos
from transformers import (LlavaNextConfig, LlavaNextForConditionalGeneration,
                          LlavaNextImageProcessorPil)

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.datasets.transforms import AnyResImage
from mmllava.datasets.transforms.tokenize import AnyResTokenCount
from mmllava.models.anyres import pinpoints_to_hf
from mmllava.registry import MODELS, TRANSFORMS

pytestmark = pytest.mark.usefixtures('one_thread')

TILE, PATCH = 48, 8
PINPOINTS = [(48, 96), (96, 48), (96, 96), (48, 144), (144, 48)]
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, image_size=TILE, patch_size=PATCH)
#: One row past the tokenizer for transformers' image token.
HF_IMAGE_TOKEN_ID = 32000
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=HF_IMAGE_TOKEN_ID + 1, max_position_embeddings=1024,
           bos_token_id=1, eos_token_id=2)
PROCESSOR = dict(type='CLIPImageProcessor', size=dict(shortest_edge=TILE),
                 crop_size=dict(height=TILE, width=TILE))


def build_model(tokenizer, merge_type='spatial_unpad', seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2),
        llm=dict(type='HFCausalLM', config=LLM),
        tokenizer=tokenizer, projector=dict(type='mlp2x_gelu'),
        image_aspect_ratio='anyres', image_grid_pinpoints=PINPOINTS,
        mm_patch_merge_type=merge_type,
        generation_cfg=dict(max_new_tokens=6, do_sample=False))
    model = MODELS.build(dict(cfg, **kwargs)).eval()
    with torch.no_grad():
        # A wider head than the default gives clear greedy winners, with
        # logits small enough (|logit| < 15) for a 1e-5 comparison in fp32.
        model.llm.get_output_embeddings().weight.normal_(0, 0.3)
        for parameter in model.projector.parameters():
            parameter.normal_(0, 0.3)
    return model


@pytest.fixture(scope='module')
def model(tokenizer_folder):
    return build_model(dict(type='PretrainedTokenizer',
                            pretrained=tokenizer_folder))


@pytest.fixture(scope='module')
def reference(model, tmp_path_factory, to_transformers_anyres):
    """transformers' LlavaNext with the model's weights, through
    ``save_pretrained`` / ``from_pretrained``."""
    config = LlavaNextConfig(
        vision_config=model.vision_encoder.model.config.to_dict(),
        text_config=model.llm.config.to_dict(),
        image_token_index=HF_IMAGE_TOKEN_ID,
        image_grid_pinpoints=pinpoints_to_hf(PINPOINTS),
        vision_feature_layer=-2, vision_feature_select_strategy='default',
        projector_hidden_act='gelu', multimodal_projector_bias=True)
    return to_transformers_anyres(model, LlavaNextForConditionalGeneration,
                                  config, tmp_path_factory.mktemp('next'))


def photo(name, box=None):
    image = Image.fromarray(getattr(photos, name)()).convert('RGB')
    return image.crop(box) if box else image


@pytest.fixture(scope='module')
def images():
    """astronaut 512x512, coffee 400x600, rocket 427x640, chelsea 300x451,
    and a 100x640 strip (a 1x3 grid)."""
    return [photo('astronaut'), photo('coffee'), photo('rocket'),
            photo('chelsea'), photo('rocket', (0, 150, 640, 250))]


QUESTIONS = ['What is this?', 'Describe the picture in a few words.',
             'Where was this taken?', 'Is there an animal?',
             'What colour is the sky?']


def pipeline(model, mode):
    tokenizer_cfg = dict(type='PretrainedTokenizer',
                         pretrained=model.tokenizer.name_or_path)
    return Compose([TRANSFORMS.build(cfg) for cfg in [
        dict(type='LoadImage'),
        dict(type='AnyResImage', image_processor=PROCESSOR,
             grid_pinpoints=PINPOINTS),
        dict(type='TokenizeConversation', tokenizer=tokenizer_cfg,
             template='vicuna_v1', mode=mode),
        dict(type='PackLLaVAInputs')]])


def turns(question, answer=None):
    conversation = [{'from': 'human', 'value': f'<image>\n{question}'}]
    if answer:
        conversation.append({'from': 'gpt', 'value': answer})
    return conversation


def batch_of(model, images, mode='predict', answers=None, first=0):
    """Image ``i`` gets question ``first + i``."""
    transform = pipeline(model, mode)
    samples = [transform(dict(img=image, sample_id=index,
                              conversations=turns(
                                  QUESTIONS[first + index],
                                  answers[index] if answers else None)))
               for index, image in enumerate(images)]
    return model.data_preprocessor(pseudo_collate(samples))


def reference_inputs(model, batch, index, images):
    """Sample ``index`` for transformers: the image placeholder written as
    the processor's number of image tokens, its own pixels."""
    real = batch['attention_mask'][index].bool()
    ids = batch['input_ids'][index][real].tolist()
    image = images[index]
    processed = LlavaNextImageProcessorPil(
        size=dict(shortest_edge=TILE),
        crop_size=dict(height=TILE, width=TILE),
        image_grid_pinpoints=pinpoints_to_hf(PINPOINTS))(
            image, return_tensors='pt')
    count = model.image_token_count((image.height, image.width))
    expanded = []
    for value in ids:
        expanded += [HF_IMAGE_TOKEN_ID] * count \
            if value == IMAGE_TOKEN_INDEX else [value]
    return dict(input_ids=torch.tensor([expanded]),
                pixel_values=processed['pixel_values'],
                image_sizes=processed['image_sizes'])


@pytest.mark.parametrize('select_feature', ['patch', 'cls_patch'])
def test_truncation_counts_the_rows_a_flat_merge_makes(
        tokenizer_folder, images, select_feature):
    """``AnyResTokenCount`` (what truncation counts) against the feature
    rows the model makes of each photo; a kept CLS token adds a row per
    tile."""
    tokenizer = dict(type='PretrainedTokenizer', pretrained=tokenizer_folder)
    model = build_model(tokenizer, merge_type='flat', vision_encoder=dict(
        type='CLIPVisionEncoder', config=VISION, select_layer=-2,
        select_feature=select_feature))
    batch = batch_of(model, images)
    with torch.no_grad():
        features = model.image_features(batch['pixel_values'],
                                        batch['num_images'],
                                        batch['image_sizes'])
    count = AnyResTokenCount(PINPOINTS, TILE, PATCH, 'flat',
                             cls_token=select_feature == 'cls_patch')
    rows = [len(blocks[0]) for blocks in features]
    assert rows == [count((image.height, image.width)) for image in images]
    tiles = [len(tiles) for tiles in AnyResImage(PROCESSOR, PINPOINTS)(
        dict(images=images))['pixel_values']]
    side = (TILE // PATCH)**2
    assert rows == [n * (side + (select_feature == 'cls_patch'))
                    for n in tiles]
    with pytest.raises(ValueError, match="needs merge_type 'flat'"):
        AnyResTokenCount(PINPOINTS, TILE, PATCH, 'spatial', cls_token=True)


def test_image_token_counts_differ_per_sample(model, images):
    counts = [model.image_token_count((image.height, image.width))
              for image in images]
    # Square, 3:2 (coffee, rocket, chelsea: 8 of 12 patch rows kept) and a
    # strip on a 1x3 grid.
    assert counts == [36 + 12 * 13, 36 + 8 * 13, 36 + 8 * 13, 36 + 8 * 13,
                      36 + 2 * 19]


def test_batched_logits_match_transformers(model, reference, images):
    batch = batch_of(model, images)
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
        for index in range(len(images)):
            inputs = reference_inputs(model, batch, index, images)
            expected = reference(**inputs).logits[0]
            ours = logits[index, :len(expected)]
            diff = (ours - expected).abs().max()
            assert diff <= 1e-5, f'sample {index}: max abs diff {diff}'
    # The images matter, and so does the learned newline.
    with torch.no_grad():
        saved = model.image_newline.clone()
        model.image_newline.zero_()
        changed = model(**batch, mode='tensor')
        model.image_newline.copy_(saved)
    assert not torch.allclose(changed, logits, atol=1e-3)


def test_batched_loss_matches_transformers(model, reference, images):
    answers = ['An astronaut.', 'A cup of coffee on a table.', 'A rocket.',
               'A cat.', 'Blue.']
    batch = batch_of(model, images, mode='train', answers=answers)
    with torch.no_grad():
        ours = model(**batch, mode='loss')['loss']
    # transformers' loss: mean over every supervised token of the batch.
    total, count = 0.0, 0
    for index in range(len(images)):
        inputs = reference_inputs(model, batch, index, images)
        real = batch['attention_mask'][index].bool()
        rows = int((inputs['input_ids'] == HF_IMAGE_TOKEN_ID).sum())
        labels = []
        for value, label in zip(batch['input_ids'][index][real].tolist(),
                                batch['labels'][index][real].tolist()):
            labels += [IGNORE_INDEX] * rows if value == IMAGE_TOKEN_INDEX \
                else [label]
        labels = torch.tensor([labels])
        with torch.no_grad():
            loss = reference(**inputs, labels=labels).loss
        supervised = int((labels[:, 1:] != IGNORE_INDEX).sum())
        total += loss.item() * supervised
        count += supervised
    assert abs(ours.item() - total / count) <= 1e-5


def test_training_step_reaches_image_newline_and_tower(tokenizer_folder,
                                                      images):
    model = build_model(dict(type='PretrainedTokenizer',
                             pretrained=tokenizer_folder),
                        freeze_vision_encoder=False).train()
    batch = batch_of(model, images[:2], mode='train',
                     answers=['An astronaut.', 'Coffee.'])
    model(**batch, mode='loss')['loss'].backward()
    assert model.image_newline.grad.abs().sum() > 0
    layer = model.vision_encoder.layers[0]
    assert layer.self_attn.q_proj.weight.grad.abs().sum() > 0
    assert model.trainable_parameter_counts()['image_newline'] == 64


@pytest.mark.slow
def test_batched_generation_equals_single_and_transformers(model, reference,
                                                           images):
    batch = batch_of(model, images)
    batched = model.generate_answers(**batch)
    for index in range(len(images)):
        alone = model.generate_answers(
            **batch_of(model, [images[index]], first=index))
        assert alone == [batched[index]]
        inputs = reference_inputs(model, batch, index, images)
        with torch.no_grad():
            generated = reference.generate(**inputs, max_new_tokens=6,
                                           do_sample=False)
        text = model.tokenizer.decode(
            generated[0, inputs['input_ids'].shape[1]:],
            skip_special_tokens=True)
        assert batched[index] == text.split('</s>')[0].strip()
    assert all(batched)


@pytest.mark.parametrize('merge_type', ['flat', 'spatial'])
def test_other_merges_give_their_token_counts(tokenizer, images, merge_type):
    model = build_model(tokenizer, merge_type)
    assert model.image_newline is None
    assert 'image_newline' not in model.state_dict()
    batch = batch_of(model, images[:2])
    with torch.no_grad():
        features = model.image_features(batch['pixel_values'],
                                        batch['num_images'],
                                        batch['image_sizes'])
    # Both photos choose the 2x2 grid: base view + 4 tiles of 36 patches.
    assert [block[0].shape[0] for block in features] == [5 * 36, 5 * 36]


def test_layout_errors(tokenizer, images):
    with pytest.raises(ValueError, match="needs image_grid_pinpoints"):
        build_model(tokenizer, image_grid_pinpoints=None)
    with pytest.raises(ValueError, match="to image_aspect_ratio='anyres'"):
        MODELS.build(dict(
            type='LLaVA', tokenizer=tokenizer,
            vision_encoder=dict(type='CLIPVisionEncoder', config=VISION),
            llm=dict(type='HFCausalLM', config=LLM),
            mm_patch_merge_type='spatial_unpad'))
    with pytest.raises(ValueError, match="select_feature='patch'"):
        MODELS.build(dict(
            type='LLaVA', tokenizer=tokenizer,
            vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                                select_feature='cls_patch'),
            llm=dict(type='HFCausalLM', config=LLM),
            image_aspect_ratio='anyres', image_grid_pinpoints=PINPOINTS,
            mm_patch_merge_type='spatial'))
    model = build_model(tokenizer)
    batch = batch_of(model, images[:1])
    with pytest.raises(ValueError, match='image sizes given'):
        model(**dict(batch, image_sizes=None), mode='tensor')
    with pytest.raises(ValueError, match='tiles given'):
        model(**dict(batch, pixel_values=batch['pixel_values'][:3]),
              mode='tensor')
