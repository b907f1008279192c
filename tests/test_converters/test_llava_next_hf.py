"""AnyRes export to and import from llava-hf
(``LlavaNextForConditionalGeneration``), with transformers as the judge:
the exported folder loads with ``from_pretrained``, its processor counts our
image tokens and gives our pixels, its logits equal ours; importing back
(``get_model``'s loader and the mmllava-folder conversion) gives every weight
bit for bit."""
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from PIL import Image
from skimage import data as photos
from transformers import (AutoProcessor, LlavaNextConfig,
                          LlavaNextForConditionalGeneration)

from mmllava.apis.generation import build_test_pipeline
from mmllava.converters.layouts import detect_layout, load_pretrained
from mmllava.converters.llava_hf import convert_hf_to_mmllava, export_model
from mmllava.registry import MODELS
from mmllava.serving.engine import GenerationEngine

pytestmark = pytest.mark.usefixtures('one_thread')

TILE, PATCH = 48, 8
PINPOINTS = [(48, 96), (96, 48), (96, 96), (48, 144), (144, 48)]
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, image_size=TILE, patch_size=PATCH)
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=32000, max_position_embeddings=1024, bos_token_id=1,
           eos_token_id=2)
MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_PROCESSOR = dict(type='CLIPImageProcessor',
                       size=dict(shortest_edge=TILE),
                       crop_size=dict(height=TILE, width=TILE),
                       image_mean=MEAN,
                       image_std=[0.26862954, 0.26130258, 0.27577711])


def build_model(tokenizer_folder, seed=0, merge_type='spatial_unpad'):
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2),
        llm=dict(type='HFCausalLM', config=LLM),
        tokenizer=dict(type='PretrainedTokenizer', pretrained=tokenizer_folder,
                       padding_side='right'),
        projector=dict(type='mlp2x_gelu'),
        image_aspect_ratio='anyres', image_grid_pinpoints=PINPOINTS,
        mm_patch_merge_type=merge_type)).eval()
    with torch.no_grad():
        model.llm.get_output_embeddings().weight.normal_(0, 0.3)
        for parameter in model.projector.parameters():
            parameter.normal_(0, 0.3)
    tokenizer = dict(type='PretrainedTokenizer', pretrained=tokenizer_folder)
    model.cfg = Config(dict(test_pipeline=[
        dict(type='LoadImage'),
        dict(type='AnyResImage', image_processor=IMAGE_PROCESSOR,
             grid_pinpoints=PINPOINTS),
        dict(type='TokenizeConversation', tokenizer=tokenizer,
             template='vicuna_v1', mode='predict'),
        dict(type='PackLLaVAInputs', meta_keys=('sample_id', )),
    ]))
    return model


@pytest.fixture(scope='module')
def model(tokenizer_folder):
    return build_model(tokenizer_folder)


@pytest.fixture(scope='module')
def hf_dir(model, tokenizer_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp('llava_next_hf')
    export_model(model, str(out), tokenizer_dir=tokenizer_folder)
    return out


@pytest.fixture(scope='module')
def reference(hf_dir, load_export):
    return load_export(LlavaNextForConditionalGeneration, hf_dir)


@pytest.fixture(scope='module')
def images():
    rocket = Image.fromarray(photos.rocket())
    return [Image.fromarray(photos.chelsea()), rocket,
            rocket.crop((0, 150, 640, 250))]


def our_batch(model, images):
    pipeline = build_test_pipeline(model)
    samples = [pipeline(dict(sample_id=index, img=image, conversations=[
        {'from': 'human', 'value': '<image>\nWhat is in the picture?'}]))
        for index, image in enumerate(images)]
    return model.data_preprocessor(pseudo_collate(samples))


def test_config_and_processor_say_what_the_model_does(hf_dir, model,
                                                      images):
    config = LlavaNextConfig.from_pretrained(hf_dir)
    assert config.model_type == 'llava_next'
    assert config.image_grid_pinpoints == [list(p) for p in PINPOINTS]
    assert config.vision_feature_layer == -2
    assert config.vision_feature_select_strategy == 'default'
    processor = AutoProcessor.from_pretrained(hf_dir)
    assert type(processor).__name__ == 'LlavaNextProcessor'
    batch = our_batch(model, images)
    tiles = 0
    for image in images:
        inputs = processor(images=image, text='<image>',
                           return_tensors='pt')
        count = int((inputs['input_ids'] == config.image_token_index).sum())
        assert count == model.image_token_count((image.height, image.width))
        # Its pixels are ours.
        theirs = inputs['pixel_values'][0]
        torch.testing.assert_close(
            batch['pixel_values'][tiles:tiles + len(theirs)], theirs,
            atol=1e-6, rtol=0)
        tiles += len(theirs)
    assert tiles == len(batch['pixel_values'])


def expand(ids, count, image_token):
    out = []
    for value in ids.tolist():
        out += [image_token] * count if value == -200 else [value]
    return out


def test_logits_match_transformers(model, reference, hf_dir, images):
    processor = AutoProcessor.from_pretrained(hf_dir)
    batch = our_batch(model, images)
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
    for index, image in enumerate(images):
        ids = batch['input_ids'][index][batch['attention_mask'][index]
                                        .bool()]
        pixels = processor.image_processor(image, return_tensors='pt')
        count = model.image_token_count((image.height, image.width))
        with torch.no_grad():
            expected = reference(
                input_ids=torch.tensor([expand(
                    ids, count, reference.config.image_token_index)]),
                **pixels).logits[0]
        diff = (logits[index, :len(expected)] - expected[:, :32000]).abs()
        assert diff.max() <= 1e-5, f'sample {index}: {diff.max()}'


def test_import_back_is_bit_exact(model, hf_dir, tokenizer_folder):
    assert detect_layout(hf_dir) == 'llava-hf'
    fresh = build_model(tokenizer_folder, seed=5)
    load_pretrained(fresh, hf_dir)
    loaded = fresh.state_dict()
    assert 'image_newline' in loaded
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_import_to_mmllava_folders(model, hf_dir, tmp_path, images):
    from mmllava.apis import get_model
    config_path = convert_hf_to_mmllava(str(hf_dir), str(tmp_path / 'mm'))
    built = get_model(config_path, device='cpu')
    assert built.image_aspect_ratio == 'anyres'
    assert built.image_grid_pinpoints == PINPOINTS
    original = model.state_dict()
    for key, value in built.state_dict().items():
        if key.endswith(('embed_tokens.weight', 'lm_head.weight')):
            value = value[:32000]
        assert torch.equal(value, original[key]), key
    text = (tmp_path / 'mm' / 'llava_config.py').read_text()
    assert 'AnyResImage' in text and 'PadToSquare' not in text
    # Its own pipeline gives the original model's pixels.
    ours, theirs = our_batch(model, images), our_batch(built, images)
    assert torch.equal(ours['pixel_values'], theirs['pixel_values'])
    assert torch.equal(ours['image_sizes'], theirs['image_sizes'])


def test_only_spatial_unpad_exports(tokenizer_folder, tmp_path):
    model = build_model(tokenizer_folder, merge_type='spatial')
    with pytest.raises(ValueError, match="'spatial' has no llava-hf form"):
        export_model(model, str(tmp_path), tokenizer_dir=tokenizer_folder)
    assert not (tmp_path / 'config.json').exists()


def test_server_counts_each_images_rows(model):
    """The server's prompt length (usage, context limit) is the length the
    LLM runs, though AnyRes images of different shapes give different
    numbers of rows."""
    engine = GenerationEngine(model)
    lengths = []
    for name in ('astronaut', 'rocket'):
        image = Image.fromarray(getattr(photos, name)()).convert('RGB')
        sample = engine.prepare(
            [{'from': 'human', 'value': '<image>\nWhat is this?'}], image,
            name)
        with torch.no_grad():
            logits = model(**model.data_preprocessor(pseudo_collate([sample])),
                           mode='tensor')
        assert engine.prompt_tokens(sample) == logits.shape[1]
        lengths.append(logits.shape[1])
    assert lengths[0] != lengths[1]
