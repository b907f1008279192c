"""``mmllava/converters/llava_hf.py``, with transformers as the judge.

A tiny random LLaVA-1.5 (CLIP penultimate patches, mlp2x_gelu, Llama, the
real LLaMA tokenizer) is exported; ``LlavaForConditionalGeneration`` and
``AutoProcessor`` load the folder as they are and must give our logits and
our greedy answers on real photos with a multi-turn prompt. Importing back
must give every original weight bit for bit.
"""
import json

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from PIL import Image
from skimage import data as photos
from transformers import (AutoProcessor, AutoTokenizer, LlavaConfig,
                          LlavaForConditionalGeneration)

from mmllava.apis.generation import build_test_pipeline
from mmllava.converters.layouts import detect_layout, load_pretrained
from mmllava.converters.llava_hf import (convert_hf_to_mmllava,
                                         export_model, load_into_model,
                                         read_shards)
from mmllava.converters.shards import SAFE_INDEX, file_keys
from mmllava.registry import MODELS

pytestmark = pytest.mark.usefixtures('one_thread')

IMAGE_SIZE, PATCH_SIZE = 48, 8
NUM_PATCHES = (IMAGE_SIZE // PATCH_SIZE)**2
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, image_size=IMAGE_SIZE,
              patch_size=PATCH_SIZE)
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=32000, max_position_embeddings=512, bos_token_id=1,
           eos_token_id=2)
MEAN = [0.48145466, 0.4578275, 0.40821073]
IMAGE_PROCESSOR = dict(type='CLIPImageProcessor',
                       size=dict(shortest_edge=IMAGE_SIZE),
                       crop_size=dict(height=IMAGE_SIZE, width=IMAGE_SIZE),
                       image_mean=MEAN,
                       image_std=[0.26862954, 0.26130258, 0.27577711])
#: A multi-turn conversation about the first photo, one turn about the
#: second.
CONVERSATIONS = [
    [dict(role='user', content=[dict(type='image'), dict(
        type='text', text='What is in the picture?')]),
     dict(role='assistant', content=[dict(type='text',
                                          text='A person in a suit.')]),
     dict(role='user', content=[dict(type='text',
                                     text='What colour is the suit?')])],
    [dict(role='user', content=[dict(type='image'), dict(
        type='text', text='Describe the image briefly.')])],
]


def llava_turns(conversation):
    """The same conversation as LLaVA records."""
    turns = []
    for message in conversation:
        text = ''.join(item.get('text', '') for item in message['content'])
        if any(item['type'] == 'image' for item in message['content']):
            text = '<image>\n' + text
        turns.append({'from': 'human' if message['role'] == 'user'
                      else 'gpt', 'value': text})
    return turns


def build_model(tokenizer_folder, seed=0, llm=None, **encoder):
    torch.manual_seed(seed)
    model = MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2, **encoder),
        llm=dict(type='HFCausalLM', config=dict(LLM, **(llm or {}))),
        tokenizer=dict(type='PretrainedTokenizer', pretrained=tokenizer_folder,
                       padding_side='right'),
        projector=dict(type='mlp2x_gelu'),
        generation_cfg=dict(max_new_tokens=8, do_sample=False))).eval()
    with torch.no_grad():
        # A wide head gives clear greedy winners (a random head's near-equal
        # logits would let greedy decoding follow rounding noise).
        model.llm.get_output_embeddings().weight.normal_(0, 1)
        for parameter in model.projector.parameters():
            parameter.normal_(0, 0.3)
    tokenizer = dict(type='PretrainedTokenizer', pretrained=tokenizer_folder)
    model.cfg = Config(dict(test_pipeline=[
        dict(type='LoadImage'),
        dict(type='PadToSquare', mean=MEAN),
        dict(type='ProcessImage', image_processor=IMAGE_PROCESSOR),
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
    out = tmp_path_factory.mktemp('llava_hf')
    # Small shards: the folder has several, as a 7B export does.
    export_model(model, str(out), tokenizer_dir=tokenizer_folder,
                 max_shard_size='3MB')
    return out


@pytest.fixture(scope='module')
def reference(hf_dir, load_export):
    return load_export(LlavaForConditionalGeneration, hf_dir)


@pytest.fixture(scope='module')
def processor(hf_dir):
    return AutoProcessor.from_pretrained(hf_dir)


@pytest.fixture(scope='module')
def images():
    return [Image.fromarray(photos.astronaut()), Image.fromarray(
        photos.coffee())]


def our_batch(model, images):
    pipeline = build_test_pipeline(model)
    samples = [pipeline(dict(sample_id=index, img=image,
                             conversations=llava_turns(conversation)))
               for index, (image, conversation) in enumerate(
                   zip(images, CONVERSATIONS))]
    return model.data_preprocessor(pseudo_collate(samples))


def hf_inputs(processor, images, index):
    text = processor.apply_chat_template(CONVERSATIONS[index],
                                         add_generation_prompt=True)
    return processor(images=images[index], text=text, return_tensors='pt')


def test_config_and_processor_say_what_the_model_does(hf_dir, processor,
                                                      model):
    config = LlavaConfig.from_pretrained(hf_dir)
    tokenizer = processor.tokenizer
    assert config.image_token_index == tokenizer.convert_tokens_to_ids(
        '<image>') == 32000
    assert tokenizer.pad_token == '<pad>' and tokenizer.pad_token_id == 32001
    assert config.text_config.vocab_size == len(tokenizer) == 32002
    assert config.vision_feature_layer == -2
    assert config.vision_feature_select_strategy == 'default'
    assert config.image_seq_length == NUM_PATCHES
    assert processor.patch_size == PATCH_SIZE
    assert processor.image_processor.do_pad
    # Both processors give the same number of image tokens.
    image = Image.new('RGB', (80, 50))
    ids = processor(images=image, text='<image>', return_tensors='pt')
    assert (ids['input_ids'] == 32000).sum() == NUM_PATCHES


def test_chat_template_renders_as_mmllava(processor, model):
    from mmllava.conversation import render_conversation
    text = processor.apply_chat_template(CONVERSATIONS[0],
                                         add_generation_prompt=True)
    segments = render_conversation(llava_turns(CONVERSATIONS[0]),
                                   model.template, has_image=True,
                                   add_generation_prompt=True)
    assert text == ''.join(segment.text for segment in segments)


def test_processor_pixels_match_our_pipeline(model, processor, images):
    batch = our_batch(model, images)
    for index, image in enumerate(images):
        pixels = processor.image_processor(image, return_tensors='pt')
        torch.testing.assert_close(pixels['pixel_values'][0],
                                   batch['pixel_values'][index],
                                   atol=1e-6, rtol=0)


def expand(ids, num_patches=NUM_PATCHES):
    """Our ids with the image placeholder written as llava-hf's tokens."""
    out = []
    for value in ids.tolist():
        out += [32000] * num_patches if value == -200 else [value]
    return out


#: What sentencepiece writes for the space it puts before a chunk.
SPACE_PIECE = 28705


def test_processor_ids_differ_only_after_the_image(model, processor, images):
    """The official LLaVA code (and mmllava) tokenizes the text after an
    image on its own, so sentencepiece puts a space piece before its
    ``\n``; the llava-hf processor tokenizes the prompt whole, without it.
    That token is the only difference (a known one between official LLaVA and
    llava-hf): the tests below give both models mmllava's ids."""
    batch = our_batch(model, images)
    for index in range(len(images)):
        ours = batch['input_ids'][index][batch['attention_mask'][index]
                                         .bool()].tolist()
        after_image = ours.index(-200) + 1
        assert ours[after_image] == SPACE_PIECE
        del ours[after_image]
        theirs = hf_inputs(processor, images, index)['input_ids'][0]
        assert theirs.tolist() == expand(torch.tensor(ours))


def reference_inputs(batch, processor, images, index):
    """Our prompt ids (image expanded to llava-hf's tokens) and the
    processor's pixels."""
    ids = batch['input_ids'][index][batch['attention_mask'][index].bool()]
    pixels = processor.image_processor(images[index], return_tensors='pt')
    return dict(input_ids=torch.tensor([expand(ids)]),
                pixel_values=pixels['pixel_values'])


def test_logits_match_transformers(model, reference, processor, images):
    batch = our_batch(model, images)
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
        for index in range(len(images)):
            expected = reference(**reference_inputs(
                batch, processor, images, index)).logits[0]
            ours = logits[index, :len(expected)]
            # The original vocabulary agrees; the added tokens' columns are
            # the mean logit, below the best.
            diff = (ours - expected[:, :32000]).abs().max()
            assert diff <= 1e-5, f'sample {index}: max abs diff {diff}'
            assert (expected[:, 32000:] < expected[:, :32000].max(
                -1, keepdim=True).values).all()


def test_greedy_generation_matches_transformers(model, reference, processor,
                                                images):
    batch = our_batch(model, images)
    answers = model.generate_answers(
        batch['input_ids'], batch['attention_mask'], batch['pixel_values'],
        batch['num_images'], max_new_tokens=8)
    for index in range(len(images)):
        inputs = reference_inputs(batch, processor, images, index)
        with torch.no_grad():
            generated = reference.generate(**inputs, max_new_tokens=8,
                                           do_sample=False)
        new = generated[0, inputs['input_ids'].shape[1]:]
        text = processor.tokenizer.decode(new, skip_special_tokens=True)
        assert answers[index] == text.split('</s>')[0].strip()
        assert answers[index]


def test_import_back_is_bit_exact(model, hf_dir, tokenizer_folder):
    fresh = build_model(tokenizer_folder, seed=5)
    load_into_model(fresh, str(hf_dir))
    original = model.state_dict()
    loaded = fresh.state_dict()
    assert loaded.keys() == original.keys()
    for key, value in original.items():
        assert torch.equal(loaded[key], value), key


def test_get_model_style_load_detects_the_layout(model, hf_dir,
                                                 tokenizer_folder):
    assert detect_layout(hf_dir) == 'llava-hf'
    fresh = build_model(tokenizer_folder, seed=6)
    load_pretrained(fresh, hf_dir)
    assert torch.equal(fresh.projector[0].weight, model.projector[0].weight)


def test_import_to_mmllava_folders(model, hf_dir, tmp_path):
    from mmllava.apis import get_model
    config = convert_hf_to_mmllava(str(hf_dir), str(tmp_path / 'mm'))
    built = get_model(config, device='cpu')
    original = model.state_dict()
    for key, value in built.state_dict().items():
        if key.endswith(('embed_tokens.weight', 'lm_head.weight')):
            # The folder keeps llava-hf's vocabulary: the original rows,
            # then the added tokens'.
            assert value.shape[0] == 32002
            value = value[:32000]
        assert torch.equal(value, original[key]), key
    assert 'pad_to_square' in (tmp_path / 'mm' / 'llava_config.py').read_text()


def test_index_names_every_key_once(hf_dir):
    index = json.loads((hf_dir / SAFE_INDEX).read_text())
    weight_map = index['weight_map']
    files = sorted(set(weight_map.values()))
    assert len(files) > 1
    in_files = [key for name in files for key in file_keys(
        str(hf_dir / name))]
    assert len(in_files) == len(set(in_files)) == len(weight_map)
    assert all(weight_map[key] in files for key in in_files)
    keys = {key for shard in read_shards(str(hf_dir)) for key in shard}
    # Every llava-hf key maps to its own mmllava key.
    assert len(keys) == len(weight_map)


def test_cls_patch_exports_as_full_strategy(tokenizer_folder, tmp_path):
    model = build_model(tokenizer_folder, select_feature='cls_patch')
    export_model(model, str(tmp_path), tokenizer_dir=tokenizer_folder)
    config = LlavaConfig.from_pretrained(tmp_path)
    assert config.vision_feature_select_strategy == 'full'
    assert config.image_seq_length == NUM_PATCHES + 1
    reference = LlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[1, 450, -200, 1724, 29973]])
    pixels = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE,
                         generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                     pixel_values=pixels, num_images=[1], mode='tensor')
        theirs = reference(input_ids=torch.tensor(
            [expand(ids[0], NUM_PATCHES + 1)]), pixel_values=pixels).logits
    assert (ours[0] - theirs[0, :, :32000]).abs().max() <= 1e-5


@pytest.mark.slow
def test_tied_embeddings_export_and_import(tokenizer_folder, tmp_path):
    """The demo's LLM ties its LM head to its input embedding."""
    model = build_model(tokenizer_folder, llm=dict(tie_word_embeddings=True))
    export_model(model, str(tmp_path), tokenizer_dir=tokenizer_folder)
    reference = LlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert reference.lm_head.weight.data_ptr() == \
        reference.get_input_embeddings().weight.data_ptr()
    ids = torch.tensor([[1, 450, -200, 1724, 29973]])
    pixels = torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        ours = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                     pixel_values=pixels, num_images=[1], mode='tensor')
        theirs = reference(input_ids=torch.tensor([expand(ids[0])]),
                           pixel_values=pixels).logits
    assert (ours[0] - theirs[0, :, :32000]).abs().max() <= 1e-5
    fresh = build_model(tokenizer_folder, seed=3,
                        llm=dict(tie_word_embeddings=True))
    load_into_model(fresh, str(tmp_path))
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_only_mlp2x_gelu_exports(tokenizer_folder, tmp_path):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='LLaVA', projector=dict(type='linear'),
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION),
        llm=dict(type='HFCausalLM', config=LLM),
        tokenizer=dict(type='PretrainedTokenizer',
                       pretrained=tokenizer_folder)))
    with pytest.raises(ValueError, match="'linear' has no llava-hf form"):
        export_model(model, str(tmp_path), tokenizer_dir=tokenizer_folder)


@pytest.mark.slow
def test_an_imported_folder_exports_again(model, hf_dir, tmp_path):
    """llava-hf -> mmllava -> llava-hf gives the first folder's tensors,
    config ids and tokenizer back."""
    from mmllava.apis import get_model
    config = convert_hf_to_mmllava(str(hf_dir), str(tmp_path / 'mm'))
    built = get_model(config, device='cpu')
    again = tmp_path / 'hf_again'
    export_model(built, str(again))
    first = {key: value for shard in read_shards(str(hf_dir))
             for key, value in shard.items()}
    second = {key: value for shard in read_shards(str(again))
              for key, value in shard.items()}
    assert second.keys() == first.keys()
    assert all(torch.equal(second[key], value)
               for key, value in first.items())
    for name in ('image_token_index', 'pad_token_id'):
        assert json.loads((again / 'config.json').read_text())[name] == \
            json.loads((hf_dir / 'config.json').read_text())[name]
    assert AutoTokenizer.from_pretrained(again).get_vocab() == \
        AutoTokenizer.from_pretrained(hf_dir).get_vocab()
