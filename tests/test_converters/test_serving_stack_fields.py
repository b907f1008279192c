"""The fields vLLM and SGLang read from a llava-hf folder (the table "What
serving stacks read" in docs/checkpoints.md), checked on the exports of three
tiny models: LLaVA-1.5 (CLIP patches, strategy ``'default'``), the same with
CLIP's CLS token kept (``'full'``) and AnyRes (``LlavaNext``). Every field is
read from the files as a serving stack reads them (raw JSON, the tokenizer
files) and must be there with the value the model and the other files imply;
the image-token count a stack works out from ``config.json`` alone must be
the count the folder's processor expands ``<image>`` into (vLLM fails a
request when the two differ)."""
import json
from pathlib import Path

import pytest
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer

from mmllava.converters.llava_hf import export_model
from mmllava.models.anyres import (count_image_tokens, pinpoints_from_hf,
                                   pinpoints_to_hf)

# Exports of three models: seconds, so not in the quick set.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('one_thread')]

CASES = ('llava', 'llava_full', 'llava_next')
#: The tower fields the stacks build their vision model from.
VISION_FIELDS = ('hidden_size', 'image_size', 'patch_size',
                 'num_hidden_layers', 'num_attention_heads',
                 'intermediate_size', 'hidden_act', 'layer_norm_eps')
#: The LLM fields they build the language model from.
TEXT_FIELDS = ('hidden_size', 'intermediate_size', 'num_hidden_layers',
               'num_attention_heads', 'num_key_value_heads', 'rms_norm_eps',
               'max_position_embeddings')
#: (height, width) of the images counted: square, wide, tall, tiny.
SIZES = [(48, 48), (300, 451), (500, 120), (20, 30)]


@pytest.fixture(scope='module', params=CASES)
def case(request, tokenizer_folder, tmp_path_factory, llava_tests):
    """``(name, model, folder)``."""
    name = request.param
    if name == 'llava_next':
        return name, request.getfixturevalue('llava_next_model'), \
            request.getfixturevalue('llava_next_export')
    encoder = dict(select_feature='cls_patch') if name == 'llava_full' \
        else {}
    model = llava_tests.build_model(tokenizer_folder, **encoder)
    out = tmp_path_factory.mktemp(name)
    export_model(model, str(out), tokenizer_dir=tokenizer_folder)
    return name, model, out


def read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def drops_cls(model) -> bool:
    return model.vision_encoder.select_feature == 'patch'


def pads_to_square(model) -> bool:
    return any(step['type'] == 'PadToSquare'
               or step.get('pad_to_square') is not None
               for step in model.cfg.test_pipeline)


def test_config_json(case):
    name, model, folder = case
    config = read(folder, 'config.json')
    anyres = name == 'llava_next'
    assert config['architectures'] == [
        'LlavaNextForConditionalGeneration' if anyres
        else 'LlavaForConditionalGeneration']
    assert config['model_type'] == ('llava_next' if anyres else 'llava')

    vision, tower = config['vision_config'], model.vision_encoder.model.config
    assert vision['model_type'] == tower.model_type == 'clip_vision_model'
    for field in VISION_FIELDS:
        assert vision[field] == getattr(tower, field), field
    text, llm = config['text_config'], model.llm.config
    assert text['model_type'] == llm.model_type == 'llama'
    for field in TEXT_FIELDS:
        assert text[field] == getattr(llm, field), field
    # 4.x (and the stacks on it) read rope_theta, 5 rope_parameters.
    assert text['rope_theta'] == text['rope_parameters']['rope_theta'] == \
        llm.rope_parameters['rope_theta']

    layer = config['vision_feature_layer']
    assert layer == model.vision_encoder.select_layer
    assert -vision['num_hidden_layers'] <= layer < vision['num_hidden_layers']
    strategy = config['vision_feature_select_strategy']
    assert strategy == ('default' if drops_cls(model) else 'full')
    assert config['projector_hidden_act'] == 'gelu'
    assert config['multimodal_projector_bias'] is True
    keys = read(folder, 'model.safetensors.index.json')['weight_map']
    assert {'multi_modal_projector.linear_1.bias',
            'multi_modal_projector.linear_2.bias'} <= keys.keys()
    assert ('image_newline' in keys) == anyres

    # One tile's features (AnyRes: the base view's).
    side = vision['image_size'] // vision['patch_size']
    per_tile = side * side + 1 - (strategy == 'default')
    assert config['image_seq_length'] == per_tile
    if not anyres:
        assert model.image_token_count() == per_tile
    # The weights' dtype, under both its names.
    dtype = str(model.llm.dtype).removeprefix('torch.')
    assert config['dtype'] == config['torch_dtype'] == dtype == 'float32'
    if anyres:
        assert config['image_grid_pinpoints'] == pinpoints_to_hf(
            model.image_grid_pinpoints)


def test_processor_files(case):
    name, model, folder = case
    config = read(folder, 'config.json')
    anyres = name == 'llava_next'
    processor_config = read(folder, 'processor_config.json')
    preprocessor = read(folder, 'preprocessor_config.json')
    processor_class = 'LlavaNextProcessor' if anyres else 'LlavaProcessor'
    image_processor_type = 'LlavaNextImageProcessor' if anyres \
        else 'LlavaImageProcessor'

    # processor_config.json: what the processor expands <image> by.
    assert processor_config['processor_class'] == processor_class
    assert processor_config['patch_size'] == \
        config['vision_config']['patch_size']
    assert processor_config['vision_feature_select_strategy'] == \
        config['vision_feature_select_strategy']
    # CLIP's CLS token: one more feature than patches, whether the strategy
    # then drops it ('default') or keeps it ('full').
    assert processor_config['num_additional_image_tokens'] == 1
    assert processor_config['image_token'] == '<image>'

    # preprocessor_config.json (transformers 4.x reads the image processor
    # there; 5 also nests it in processor_config.json).
    assert preprocessor['processor_class'] == processor_class
    assert preprocessor['image_processor_type'] == image_processor_type
    assert {key: value for key, value in preprocessor.items()
            if key != 'processor_class'} == \
        processor_config['image_processor']
    # The processor counts tokens from its pixels' size, the stacks from the
    # tower's image_size: the two must be one size.
    tile = config['vision_config']['image_size']
    assert preprocessor['crop_size'] == dict(height=tile, width=tile)
    assert preprocessor['do_center_crop']
    assert preprocessor['image_mean'] and preprocessor['image_std']
    if anyres:
        assert preprocessor['image_grid_pinpoints'] == \
            config['image_grid_pinpoints']
    else:
        assert preprocessor['do_pad'] == pads_to_square(model)


def test_tokenizer_files(case):
    name, model, folder = case
    config = read(folder, 'config.json')
    image_id = config['image_token_index']
    added = {token['content']: token for token in
             read(folder, 'tokenizer.json')['added_tokens']}
    assert added['<image>']['id'] == image_id and added['<image>']['special']
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.convert_tokens_to_ids('<image>') == image_id
    # The processor's image token is one token, the config's id, wherever
    # the text puts it.
    assert tokenizer('a<image>\nb', add_special_tokens=False)[
        'input_ids'].count(image_id) == 1
    assert image_id < config['text_config']['vocab_size'] == len(tokenizer)
    assert config['pad_token_id'] == tokenizer.pad_token_id
    generation = read(folder, 'generation_config.json')
    assert generation['eos_token_id'] == tokenizer.eos_token_id == \
        config['text_config']['eos_token_id']
    # The chat template, for the tokenizer and the processor alike: an image
    # item of an OpenAI-style message becomes one <image>.
    template = (folder / 'chat_template.jinja').read_text()
    assert tokenizer.chat_template == template
    processor = AutoProcessor.from_pretrained(folder)
    assert processor.chat_template == template
    text = processor.apply_chat_template(
        [dict(role='user', content=[dict(type='image'), dict(
            type='text', text='What is this?')])],
        add_generation_prompt=True)
    assert text.count('<image>') == 1 and '<image>\nWhat is this?' in text


def stack_count(config: dict, size) -> int:
    """Image tokens from config.json alone: one tile's patches, plus CLIP's
    CLS unless 'default' drops it; AnyRes adds the tiles of the best
    pinpoint, unpadded, with a newline row each."""
    vision = config['vision_config']
    side = vision['image_size'] // vision['patch_size']
    per_tile = side * side + int(
        vision['model_type'] == 'clip_vision_model') - int(
            config['vision_feature_select_strategy'] == 'default')
    if config['model_type'] != 'llava_next':
        return per_tile
    return count_image_tokens(
        size, pinpoints_from_hf(config['image_grid_pinpoints']),
        vision['image_size'], vision['patch_size'], 'spatial_unpad',
        per_tile)


def test_the_stacks_count_the_processors_image_tokens(case):
    name, model, folder = case
    config = read(folder, 'config.json')
    processor = AutoProcessor.from_pretrained(folder)
    image_id = config['image_token_index']
    for height, width in SIZES:
        image = Image.new('RGB', (width, height), (120, 30, 200))
        ids = processor(images=image, text='USER: <image>\nHi ASSISTANT:',
                        return_tensors='pt')['input_ids']
        count = int((ids == image_id).sum())
        assert count == stack_count(config, (height, width)) == \
            model.image_token_count((height, width)), (height, width)
