"""Export of an AnyRes model with an ``anyres_max`` budget to llava-hf
(``LlavaOnevisionForConditionalGeneration``) and import back, with
transformers as the judge: the exported folder loads with
``from_pretrained``, its processor counts our image tokens and gives our
pixels, its logits equal ours on photos the budget shrinks and photos it
does not; importing back (``get_model``'s loader and the mmllava-folder
conversion) gives every weight bit for bit, and the budget. The model and
the photos are ``test_models/test_llava_onevision.py``'s.

``AutoProcessor`` cannot build a ``LlavaOnevisionProcessor`` here (its video
processor needs torchvision, which is not installed beside the CPU torch):
its image processor is loaded with ``AutoImageProcessor`` and its token
count run with the settings of ``processor_config.json``."""
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from transformers import (AutoImageProcessor, AutoTokenizer,
                          LlavaOnevisionConfig,
                          LlavaOnevisionForConditionalGeneration,
                          LlavaOnevisionProcessor)

from mmllava.converters.layouts import detect_layout, load_pretrained
from mmllava.converters.llava_hf import convert_hf_to_mmllava, export_model
from mmllava.serving.engine import GenerationEngine
from mmllava.testing.demo.qwen_tokenizer import write_qwen_tokenizer

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def qwen_folder(tmp_path_factory) -> str:
    return write_qwen_tokenizer(str(tmp_path_factory.mktemp('qwen')))


def build_model(onevision_tests, qwen_folder, seed=0):
    """The tiny OneVision-shaped model with the Qwen tokenizer's own
    vocabulary (export adds ``<image>`` and ``<video>``) and a test
    pipeline of SigLIP's image settings."""
    tokenizer = dict(type='PretrainedTokenizer', pretrained=qwen_folder)
    model = onevision_tests.build_model(
        tokenizer, len(AutoTokenizer.from_pretrained(qwen_folder)), seed)
    tile = onevision_tests.TILE
    model.cfg = Config(dict(test_pipeline=[
        dict(type='LoadImage'),
        dict(type='AnyResImage', image_processor=dict(
            type='SiglipImageProcessor', size=dict(height=tile, width=tile),
            image_mean=onevision_tests.SIGLIP_MEAN,
            image_std=onevision_tests.SIGLIP_MEAN),
             grid_pinpoints=onevision_tests.PINPOINTS),
        dict(type='TokenizeConversation', tokenizer=tokenizer,
             template='qwen_1_5', mode='predict'),
        dict(type='PackLLaVAInputs', meta_keys=('sample_id', )),
    ]))
    return model


@pytest.fixture(scope='module')
def model(onevision_tests, qwen_folder):
    return build_model(onevision_tests, qwen_folder)


@pytest.fixture(scope='module')
def hf_dir(model, qwen_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp('llava_onevision_hf')
    export_model(model, str(out), tokenizer_dir=qwen_folder)
    return out


@pytest.fixture(scope='module')
def reference(hf_dir, load_export):
    return load_export(LlavaOnevisionForConditionalGeneration, hf_dir)


@pytest.fixture(scope='module')
def images(onevision_tests):
    """Two photos the budget shrinks, two it does not."""
    return list(onevision_tests.PHOTOS.values())


def image_processor(hf_dir):
    return AutoImageProcessor.from_pretrained(hf_dir, backend='pil')


def processor_count(hf_dir):
    """transformers' ``LlavaOnevisionProcessor`` image-token count, with
    the folder's settings and image processor."""
    settings = json.loads((hf_dir / 'processor_config.json').read_text())
    assert settings['processor_class'] == 'LlavaOnevisionProcessor'
    assert settings['vision_feature_select_strategy'] == 'full'
    processor = LlavaOnevisionProcessor.__new__(LlavaOnevisionProcessor)
    processor.image_processor = image_processor(hf_dir)
    processor.num_image_tokens = settings['num_image_tokens']
    processor.vision_aspect_ratio = settings['vision_aspect_ratio']
    side = processor.image_processor.size['height']
    return lambda height, width: processor._get_number_of_features(
        height, width, side, side)


def test_config_and_processor_say_what_the_model_does(
        hf_dir, model, images, onevision_tests, llava_next_tests):
    config = LlavaOnevisionConfig.from_pretrained(hf_dir)
    assert config.model_type == 'llava_onevision'
    assert config.architectures == ['LlavaOnevisionForConditionalGeneration']
    assert config.vision_aspect_ratio == 'anyres_max_2'
    assert config.image_grid_pinpoints == [
        list(pair) for pair in onevision_tests.PINPOINTS]
    assert config.vision_feature_layer == -2
    assert config.vision_feature_select_strategy == 'full'
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    assert tokenizer.convert_tokens_to_ids('<image>') == \
        config.image_token_id
    assert tokenizer.convert_tokens_to_ids('<video>') == \
        config.video_token_id != config.image_token_id
    assert (hf_dir / 'chat_template.jinja').is_file()
    count = processor_count(hf_dir)
    batch = llava_next_tests.our_batch(model, images)
    tiles = 0
    for image in images:
        assert count(image.height, image.width) == \
            model.image_token_count((image.height, image.width))
        # Its pixels are ours.
        theirs = image_processor(hf_dir)(
            image, return_tensors='pt')['pixel_values'][0]
        torch.testing.assert_close(
            batch['pixel_values'][tiles:tiles + len(theirs)], theirs,
            atol=1e-6, rtol=0)
        tiles += len(theirs)
    assert tiles == len(batch['pixel_values'])


def test_logits_match_transformers(model, reference, hf_dir, images,
                                   llava_next_tests):
    batch = llava_next_tests.our_batch(model, images)
    vocab_size = model.llm.config.vocab_size
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
    for index, image in enumerate(images):
        ids = batch['input_ids'][index][batch['attention_mask'][index]
                                        .bool()]
        pixels = image_processor(hf_dir)(image, return_tensors='pt')
        count = model.image_token_count((image.height, image.width))
        with torch.no_grad():
            expected = reference(
                input_ids=torch.tensor([llava_next_tests.expand(
                    ids, count, reference.config.image_token_id)]),
                **pixels).logits[0]
        diff = (logits[index, :len(expected)] -
                expected[:, :vocab_size]).abs().max()
        assert diff <= 1e-5, f'sample {index}: {diff}'


def test_import_back_is_bit_exact(model, hf_dir, qwen_folder,
                                  onevision_tests):
    assert detect_layout(hf_dir) == 'llava-hf'
    fresh = build_model(onevision_tests, qwen_folder, seed=5)
    load_pretrained(fresh, hf_dir)
    loaded = fresh.state_dict()
    assert 'image_newline' in loaded
    for key, value in model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_import_to_mmllava_folders(model, hf_dir, tmp_path, images,
                                   onevision_tests, llava_next_tests):
    from mmllava.apis import get_model
    config_path = convert_hf_to_mmllava(str(hf_dir), str(tmp_path / 'mm'))
    built = get_model(config_path, device='cpu')
    assert built.anyres_max == onevision_tests.ANYRES_MAX
    assert built.image_grid_pinpoints == onevision_tests.PINPOINTS
    vocab_size = model.llm.config.vocab_size
    original = model.state_dict()
    for key, value in built.state_dict().items():
        if key.endswith(('embed_tokens.weight', 'lm_head.weight')):
            value = value[:vocab_size]
        assert torch.equal(value, original[key]), key
    # Its own pipeline gives the original model's pixels and image rows.
    ours = llava_next_tests.our_batch(model, images)
    theirs = llava_next_tests.our_batch(built, images)
    assert torch.equal(ours['pixel_values'], theirs['pixel_values'])
    assert [built.image_token_count(tuple(size)) for size in
            theirs['image_sizes'].tolist()] == \
        [model.image_token_count((image.height, image.width))
         for image in images]


def test_server_counts_each_images_rows(model, images):
    """The server's prompt length (usage, context limit) is the length the
    LLM runs, for photos the budget shrinks and photos it does not."""
    engine = GenerationEngine(model)
    for index, image in enumerate(images):
        sample = engine.prepare(
            [{'from': 'human', 'value': '<image>\nWhat is this?'}], image,
            str(index))
        with torch.no_grad():
            logits = model(**model.data_preprocessor(pseudo_collate([sample])),
                           mode='tensor')
        assert engine.prompt_tokens(sample) == logits.shape[1]
