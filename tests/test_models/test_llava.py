"""``mmllava/models/llava.py``.

The forward pass and loss are checked against transformers' own
``LlavaForConditionalGeneration`` holding the same weights; the splice against
sequences written out by hand; freezing, the loss mask, generation and the
loading of stage-1 projector weights against what each config promises.
"""

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample
from safetensors.torch import save_file
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.conversation import build_generation_prompt
from mmllava.models import decode_loop
from mmllava.models import llava as llava_module
from mmllava.models.llava import load_projector_state, splice_image_features
from mmllava.models.packed_linears import (onednn_available,
                                           packed_cpu_kernels)
from mmllava.registry import MODELS
from mmllava.templates import get_template

IMG = IMAGE_TOKEN_INDEX
IMAGE_SIZE, PATCH_SIZE = 32, 8
NUM_PATCHES = (IMAGE_SIZE // PATCH_SIZE)**2  # image rows in the LLM input
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, image_size=IMAGE_SIZE,
              patch_size=PATCH_SIZE, projection_dim=16)
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=32000, max_position_embeddings=256)
#: Where transformers' Llava marks an image: one id past the tokenizer's
#: vocabulary, so both models get a vocabulary of 32001.
HF_IMAGE_TOKEN_ID = 32000


# Tiny tensors: one thread runs this module twice as fast.
pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def model(tokenizer):
    """A stage-2 model for the tests that only run it."""
    return build_llava(tokenizer)


def build_llava(tokenizer, seed=0, llm=None, **kwargs):
    """A tiny LLaVA-1.5: CLIP penultimate patches, mlp2x_gelu, Llama."""
    torch.manual_seed(seed)
    cfg = dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2, select_feature='patch'),
        llm=dict(type='HFCausalLM', config=dict(LLM, **(llm or {}))),
        tokenizer=tokenizer,
        projector=dict(type='mlp2x_gelu'))
    cfg.update(kwargs)
    return MODELS.build(cfg).eval()


def images(count, seed):
    return torch.randn(count, 3, IMAGE_SIZE, IMAGE_SIZE,
                       generator=torch.Generator().manual_seed(seed))


#: A text-only sample, one with the image first, one with the image inside
#: the text; different lengths and different numbers of supervised tokens.
SAMPLES = [
    dict(ids=[1, 101, 202, 303, 404, 505, 606],
         labels=[-100, -100, -100, -100, 404, 505, 606], images=0),
    dict(ids=[1, IMG, 707, 808, 909, 1001],
         labels=[-100, -100, -100, -100, 909, 1001], images=1),
    dict(ids=[1, 11, 12, IMG, 13, 14, 15, 16],
         labels=[-100, -100, -100, -100, 13, 14, 15, 16], images=1),
]


def make_batch(model, samples=SAMPLES, with_labels=True):
    """Collate ``samples`` and run the model's data preprocessor."""
    inputs = dict(
        input_ids=[torch.tensor(s['ids']) for s in samples],
        pixel_values=[images(s['images'], seed=s.get('seed', index))
                      if s['images'] else torch.empty(0)
                      for index, s in enumerate(samples)])
    if with_labels:
        inputs['labels'] = [torch.tensor(s['labels']) for s in samples]
    data_samples = [DataSample(metainfo=dict(sample_id=f'sample-{index}'))
                    for index in range(len(samples))]
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=data_samples))


def expand_images(sequence, placeholder, fill):
    """Write each image placeholder as ``NUM_PATCHES`` copies of ``fill``."""
    expanded = []
    for value in sequence:
        expanded += [fill] * NUM_PATCHES if value == placeholder else [value]
    return expanded


def right_pad(rows, value):
    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows])


def expanded_labels(samples=SAMPLES):
    """Labels of the spliced sequences: image rows are unsupervised."""
    ids_and_labels = [zip(s['ids'], s['labels']) for s in samples]
    return right_pad([
        expand_images([IMG if i == IMG else label for i, label in pairs],
                      IMG, IGNORE_INDEX) for pairs in ids_and_labels
    ], IGNORE_INDEX)


# ---------------------------------------------------------------------------
# Numerics against transformers' LlavaForConditionalGeneration
# (tests/test_models/conftest.py).
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def model_and_reference(tokenizer_folder, to_transformers_llava):
    model = build_llava(
        dict(type='PretrainedTokenizer', pretrained=tokenizer_folder),
        llm=dict(vocab_size=HF_IMAGE_TOKEN_ID + 1))
    return model, to_transformers_llava(model, HF_IMAGE_TOKEN_ID)


def reference_inputs(samples=SAMPLES):
    """transformers' inputs: every image written as NUM_PATCHES image
    tokens, right-padded."""
    rows = [expand_images(s['ids'], IMG, HF_IMAGE_TOKEN_ID) for s in samples]
    input_ids = right_pad(rows, 0)
    attention_mask = right_pad([[1] * len(row) for row in rows], 0)
    # Images of the image-bearing samples only, in batch order.
    pixel_values = torch.cat([images(s['images'], seed=s.get('seed', index))
                              for index, s in enumerate(samples)
                              if s['images']])
    return dict(input_ids=input_ids, attention_mask=attention_mask,
                pixel_values=pixel_values)


def test_logits_match_transformers_llava(model_and_reference):
    model, reference = model_and_reference
    batch = make_batch(model, with_labels=False)
    inputs = reference_inputs()
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
        expected = reference(**inputs).logits
    assert logits.shape == expected.shape == (3, 7 + NUM_PATCHES, 32001)
    real = inputs['attention_mask'].bool()
    # Every real position (text and image rows) agrees; padding may differ.
    torch.testing.assert_close(logits[real], expected[real], atol=1e-4,
                               rtol=1e-4)
    # The images matter: they change the text logits after them.
    other = dict(batch, pixel_values=torch.zeros_like(batch['pixel_values']))
    with torch.no_grad():
        blank = model(**other, mode='tensor')
    assert not torch.allclose(blank[2, -1], logits[2, -1], atol=1e-3)


def test_loss_matches_transformers_llava(model_and_reference):
    model, reference = model_and_reference
    batch = make_batch(model)
    with torch.no_grad():
        loss = model(**batch, mode='loss')['loss']
        expected = reference(**reference_inputs(),
                             labels=expanded_labels()).loss
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------
# The splice against sequences written out by hand.
# ---------------------------------------------------------------------------
EMBED_WIDTH = 2


@pytest.fixture
def embed_tokens():
    """Token i embeds as (2i + 1, 2i + 2): no row is zero, as padding is."""
    embedding = nn.Embedding(10, EMBED_WIDTH)
    with torch.no_grad():
        embedding.weight.copy_(torch.arange(1., 21.).view(10, EMBED_WIDTH))
    return embedding


def token(i):
    return [2. * i + 1, 2. * i + 2]


def feature_rows(count, start):
    """``count`` image rows, negative so they differ from any token."""
    return [[-float(start + r), -float(start + r) - 0.5] for r in range(count)]


PAD = [0., 0.]


@pytest.fixture
def splice_inputs():
    # Sample 0: two images (3 and 5 rows); sample 1: text only; sample 2:
    # one image of 2 rows in the middle. Right-padded with id 0.
    input_ids = torch.tensor([[1, IMG, 2, IMG, 3, 0],
                              [4, 5, 6, 0, 0, 0],
                              [7, 8, IMG, 9, 5, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 0],
                                   [1, 1, 1, 0, 0, 0],
                                   [1, 1, 1, 1, 1, 0]])
    labels = torch.tensor([[-100, -100, 2, -100, 3, -100],
                           [-100, 5, 6, -100, -100, -100],
                           [-100, 8, -100, 9, 5, -100]])
    features = [
        [torch.tensor(feature_rows(3, 10)), torch.tensor(feature_rows(5, 20))],
        [],
        [torch.tensor(feature_rows(2, 30))],
    ]
    return input_ids, attention_mask, labels, features


# The spliced samples, row by row (lengths 11, 3 and 6).
SPLICED = [
    [token(1)] + feature_rows(3, 10) + [token(2)] + feature_rows(5, 20)
    + [token(3)],
    [token(4), token(5), token(6)],
    [token(7), token(8)] + feature_rows(2, 30) + [token(9), token(5)],
]
SPLICED_LABELS = [
    [-100] + [-100] * 3 + [2] + [-100] * 5 + [3],
    [-100, 5, 6],
    [-100, 8] + [-100] * 2 + [9, 5],
]


@pytest.mark.parametrize('padding_side', ['right', 'left'])
def test_splice_matches_hand_built_sequences(embed_tokens, splice_inputs,
                                             padding_side):
    input_ids, attention_mask, labels, features = splice_inputs
    embeds, mask, new_labels = splice_image_features(
        input_ids, attention_mask, labels, features, embed_tokens,
        padding_side=padding_side)

    def pad(rows, value):
        padding = [value] * (11 - len(rows))
        return rows + padding if padding_side == 'right' else padding + rows

    expected_embeds = torch.tensor([pad(rows, PAD) for rows in SPLICED])
    expected_mask = torch.tensor([pad([1] * len(rows), 0)
                                  for rows in SPLICED])
    expected_labels = torch.tensor([pad(rows, IGNORE_INDEX)
                                    for rows in SPLICED_LABELS])
    assert embeds.shape == (3, 11, EMBED_WIDTH)
    assert torch.equal(embeds, expected_embeds)
    assert torch.equal(mask, expected_mask)
    assert torch.equal(new_labels, expected_labels)


def test_splice_without_labels_returns_none(embed_tokens, splice_inputs):
    input_ids, attention_mask, _, features = splice_inputs
    embeds, mask, labels = splice_image_features(
        input_ids, attention_mask, None, features, embed_tokens)
    assert labels is None
    assert mask.sum(1).tolist() == [11, 3, 6]
    assert torch.equal(embeds[1, :3], torch.tensor(SPLICED[1]))


def test_splice_passes_gradients_to_image_features(embed_tokens):
    image = torch.randn(3, EMBED_WIDTH, requires_grad=True)
    embeds, _, _ = splice_image_features(
        torch.tensor([[1, IMG, 2]]), torch.ones(1, 3, dtype=torch.long),
        None, [[image]], embed_tokens)
    (embeds * torch.arange(5.)[None, :, None]).sum().backward()
    # Rows 1-3 of the output are the image's rows 0-2.
    assert torch.equal(image.grad,
                       torch.tensor([[1.] * 2, [2.] * 2, [3.] * 2]))


def test_splice_names_the_sample_on_mismatch(embed_tokens):
    input_ids = torch.tensor([[1, 2, 3, 0], [1, IMG, 2, IMG]])
    with pytest.raises(ValueError) as error:
        splice_image_features(
            input_ids, torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]), None,
            [[], [torch.zeros(3, EMBED_WIDTH)]], embed_tokens,
            sample_names=['coco/1', 'coco/42'])
    message = str(error.value)
    assert "'coco/42'" in message
    assert '2 placeholders' in message and '1 images' in message


def test_model_names_the_sample_on_mismatch(model):
    samples = [SAMPLES[0], dict(SAMPLES[2], ids=[1, IMG, 5, IMG, 6])]
    samples[1]['labels'] = [-100] * 5
    with pytest.raises(ValueError, match="'sample-1'.*2 placeholders, 1 "):
        model(**make_batch(model, samples), mode='loss')


# ---------------------------------------------------------------------------
# Freezing.
# ---------------------------------------------------------------------------
def backward(model):
    model.train()
    loss = model(**make_batch(model), mode='loss')['loss']
    loss.backward()
    return loss


def names_with_grad(model):
    return {name for name, p in model.named_parameters()
            if p.grad is not None and p.grad.abs().sum() > 0}


def names_of(model, prefix):
    return {name for name, _ in model.named_parameters()
            if name.startswith(prefix)}


def test_stage1_trains_only_the_projector(tokenizer):
    model = build_llava(tokenizer, freeze_llm=True,
                        freeze_vision_encoder=True)
    projector = names_of(model, 'projector.')
    assert {n for n, p in model.named_parameters() if p.requires_grad} \
        == projector
    backward(model)
    assert names_with_grad(model) == projector
    assert all(p.grad is None for n, p in model.named_parameters()
               if n not in projector)
    counts = model.trainable_parameter_counts()
    assert counts['vision_encoder'] == counts['llm'] == 0
    assert counts['projector'] == 32 * 64 + 64 + 64 * 64 + 64


def test_stage2_trains_projector_and_llm(tokenizer):
    model = build_llava(tokenizer, freeze_llm=False)
    expected = names_of(model, 'projector.') | names_of(model, 'llm.')
    assert {n for n, p in model.named_parameters() if p.requires_grad} \
        == expected
    backward(model)
    assert names_with_grad(model) == expected
    assert all(p.grad is None
               for p in model.vision_encoder.parameters())


def test_trainable_from_layer_trains_later_encoder_layers(tokenizer):
    model = build_llava(
        tokenizer, freeze_llm=True,
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-1, trainable_from_layer=1))
    layers = names_of(model, 'vision_encoder.model.encoder.layers.1.') \
        | names_of(model, 'vision_encoder.model.encoder.layers.2.')
    expected = names_of(model, 'projector.') | layers
    assert {n for n, p in model.named_parameters() if p.requires_grad} \
        == expected
    backward(model)
    assert names_with_grad(model) == expected


def test_trainable_layers_past_select_layer_get_gradients(tokenizer):
    model = build_llava(
        tokenizer, freeze_llm=True,
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2, trainable_from_layer=1))
    backward(model)
    assert names_with_grad(model) == {
        n for n, p in model.named_parameters() if p.requires_grad}


def test_text_only_batch_gives_every_trainable_parameter_a_gradient(
        tokenizer):
    model = build_llava(tokenizer)
    model.train()
    batch = make_batch(model, [SAMPLES[0], dict(SAMPLES[0], ids=[1, 5, 6],
                                                labels=[-100, 5, 6])])
    assert batch['pixel_values'] is None
    model(**batch, mode='loss')['loss'].backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None]
    assert missing == []


def test_trainable_from_layer_needs_a_frozen_encoder(tokenizer):
    with pytest.raises(ValueError, match='trainable_from_layer'):
        build_llava(
            tokenizer, freeze_vision_encoder=False,
            vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                                trainable_from_layer=1))


def test_unfrozen_encoder_and_llm_train_everything(tokenizer):
    model = build_llava(tokenizer, freeze_vision_encoder=False)
    assert all(p.requires_grad for p in model.parameters())


# ---------------------------------------------------------------------------
# The loss.
# ---------------------------------------------------------------------------
def test_all_masked_labels_give_zero_loss_and_zero_grads(tokenizer):
    model = build_llava(tokenizer)
    model.train()
    batch = make_batch(model)
    batch['labels'] = torch.full_like(batch['labels'], IGNORE_INDEX)
    loss = model(**batch, mode='loss')['loss']
    assert torch.isfinite(loss) and loss.item() == 0
    loss.backward()
    trainable = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad]
    assert trainable
    for name, parameter in trainable:
        assert parameter.grad is not None, name
        assert torch.equal(parameter.grad,
                           torch.zeros_like(parameter.grad)), name


def manual_loss(logits, labels):
    """Mean next-token cross entropy over the batch's supervised tokens."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1),
                           labels[:, 1:].flatten(),
                           ignore_index=IGNORE_INDEX)


def test_loss_is_cross_entropy_over_supervised_tokens(model):
    batch = make_batch(model)
    with torch.no_grad():
        loss = model(**batch, mode='loss')['loss']
        logits = model(**batch, mode='tensor')
    labels = expanded_labels()
    torch.testing.assert_close(loss, manual_loss(logits, labels))
    # One mean over the batch's tokens (3 + 2 + 4), not a mean of the
    # per-sample means.
    per_sample = [manual_loss(logits[i:i + 1], labels[i:i + 1])
                  for i in range(3)]
    assert not torch.allclose(loss, torch.stack(per_sample).mean())


def test_unsupervised_labels_do_not_change_the_loss(model):
    batch = make_batch(model)
    with torch.no_grad():
        loss = model(**batch, mode='loss')['loss']
        # The first label is never a target (nothing predicts it) and
        # labels under padding are outside the sample.
        changed = batch['labels'].clone()
        changed[:, 0] = 42
        changed[1, -1] = 42
        assert batch['attention_mask'][1, -1] == 0
        same = model(**dict(batch, labels=changed), mode='loss')['loss']
        # Unmasking one more token does change it.
        unmasked = batch['labels'].clone()
        unmasked[0, 3] = batch['input_ids'][0, 3]
        other = model(**dict(batch, labels=unmasked), mode='loss')['loss']
    assert torch.equal(loss, same)
    assert not torch.allclose(loss, other)


def test_sample_losses_are_each_samples_summed_cross_entropy(model):
    batch = make_batch(model)
    with torch.no_grad():
        losses, counts = model.sample_losses(**batch)
        logits = model(**batch, mode='tensor')
        loss = model(**batch, mode='loss')['loss']
    labels = expanded_labels()
    assert counts.tolist() == [3, 2, 4]
    for index in range(3):
        torch.testing.assert_close(
            losses[index] / counts[index],
            manual_loss(logits[index:index + 1], labels[index:index + 1]))
    # Summed over the batch, the loss's token-weighted mean.
    torch.testing.assert_close(losses.sum() / counts.sum(), loss)
    with pytest.raises(ValueError, match='needs labels'):
        model.sample_losses(**make_batch(model, with_labels=False))


def test_loss_needs_labels_and_modes_are_checked(model):
    batch = make_batch(model, with_labels=False)
    with pytest.raises(ValueError, match='needs labels'):
        model(**batch, mode='loss')
    with pytest.raises(ValueError, match="Unknown mode 'logits'"):
        model(**batch, mode='logits')


# ---------------------------------------------------------------------------
# Predict.
# ---------------------------------------------------------------------------
MAX_NEW_TOKENS = 4


@pytest.fixture(scope='module')
def generator(tokenizer):
    model = build_llava(
        tokenizer,
        generation_cfg=dict(max_new_tokens=MAX_NEW_TOKENS, do_sample=False))
    # A random LM head gives near-equal logits, where greedy decoding would
    # follow rounding noise; a wide head gives clear winners.
    with torch.no_grad():
        model.llm.get_output_embeddings().weight.normal_(0, 1)
    return model


def generation_samples(model):
    template = get_template('vicuna_v1')
    questions = ['<image>\nWhat is this?',
                 '<image>\nDescribe every shape in this picture in detail.']
    return [dict(ids=build_generation_prompt(
        [{'from': 'human', 'value': question}], template, model.tokenizer,
        has_image=True), images=1, seed=seed)
        for seed, question in enumerate(questions)]


def generate(model, samples, monkeypatch):
    """Predict, also recording the ids ``generate`` returned."""
    returned = []
    original = model.llm.generate

    def spy(*args, **kwargs):
        returned.append(original(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(model.llm, 'generate', spy)
    predictions = model(**make_batch(model, samples, with_labels=False),
                        mode='predict')
    monkeypatch.undo()
    return predictions, returned[0]


def test_predict_is_batch_invariant(generator, monkeypatch):
    samples = generation_samples(generator)
    assert len(samples[0]['ids']) != len(samples[1]['ids'])
    batched, batched_ids = generate(generator, samples, monkeypatch)
    assert [type(s.pred_text) for s in batched] == [str, str]
    assert [s.sample_id for s in batched] == ['sample-0', 'sample-1']
    for index, sample in enumerate(samples):
        alone, alone_ids = generate(generator, [sample], monkeypatch)
        assert torch.equal(alone_ids[0], batched_ids[index])
        assert alone[0].pred_text == batched[index].pred_text


def test_predict_respects_max_new_tokens(generator, monkeypatch):
    _, ids = generate(generator, generation_samples(generator), monkeypatch)
    # Random weights rarely emit EOS, so the limit is what stops them.
    assert ids.shape == (2, MAX_NEW_TOKENS)


@pytest.mark.skipif(not onednn_available(), reason='no oneDNN')
def test_generation_on_packed_weights_matches_torch_kernels(generator,
                                                             monkeypatch):
    samples = generation_samples(generator)
    with profile(activities=[ProfilerActivity.CPU]) as prof, \
            packed_cpu_kernels(generator, only_if_faster=False) as count:
        packed, packed_ids = generate(generator, samples, monkeypatch)
    assert 'mkldnn::_linear_pointwise' in {e.name for e in prof.events()}
    # Every linear layer of the tower, projector and LLM, LM head included.
    linears = [m for m in generator.modules() if isinstance(m, nn.Linear)]
    assert count == len(linears)
    # Outside the block: torch's kernels, the same answers.
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        plain, plain_ids = generate(generator, samples, monkeypatch)
    assert 'mkldnn::_linear_pointwise' not in {e.name for e in prof.events()}
    assert torch.equal(packed_ids, plain_ids)
    assert [s.pred_text for s in packed] == [s.pred_text for s in plain]


def test_lean_decoding_loop_matches_transformers_loop(
        generator, monkeypatch):
    """Two prompts of different lengths (left-padded after the splice):
    the lean loop's ids equal transformers' loop's."""
    samples = generation_samples(generator)
    plain, plain_ids = generate(generator, samples, monkeypatch)
    calls = []
    original = decode_loop.lean_decode
    monkeypatch.setattr(decode_loop, 'lean_decode', lambda *args, **kwargs:
                        calls.append(1) or original(*args, **kwargs))
    with decode_loop.lean_decoding(generator) as lean:
        lean_predictions, lean_ids = generate(generator, samples,
                                              monkeypatch)
    assert lean and calls == [1]
    assert torch.equal(lean_ids, plain_ids)
    assert [s.pred_text for s in lean_predictions] == \
        [s.pred_text for s in plain]


def test_pred_text_stops_at_the_template_stop(tokenizer, monkeypatch):
    model = build_llava(tokenizer, template='plain')
    answer = model.tokenizer(' A red circle.\nUSER: more',
                             add_special_tokens=False,
                             return_tensors='pt').input_ids
    monkeypatch.setattr(model.llm, 'generate', lambda **kwargs: answer)
    sample = dict(ids=[1, IMG], images=1)
    prediction, = model(**make_batch(model, [sample], with_labels=False),
                        mode='predict')
    assert prediction.pred_text == 'A red circle.'


# ---------------------------------------------------------------------------
# projector_pretrained.
# ---------------------------------------------------------------------------
def projector_weights(seed):
    generator = torch.Generator().manual_seed(seed)
    return {'0.weight': torch.randn(64, 32, generator=generator),
            '0.bias': torch.randn(64, generator=generator),
            '2.weight': torch.randn(64, 64, generator=generator),
            '2.bias': torch.randn(64, generator=generator)}


def mmengine_checkpoint(path, weights):
    other = {'llm.lm_head.weight': torch.zeros(3, 3),
             'vision_encoder.model.post_layernorm.weight': torch.zeros(3)}
    torch.save({'meta': dict(iter=10), 'state_dict': {
        **{f'projector.{k}': v for k, v in weights.items()}, **other}}, path)
    return str(path)


def write_mmengine_checkpoint(tmp_path, weights):
    return mmengine_checkpoint(tmp_path / 'iter_10.pth', weights)


def write_work_dir(tmp_path, weights):
    checkpoint = mmengine_checkpoint(tmp_path / 'iter_10.pth', weights)
    (tmp_path / 'last_checkpoint').write_text(checkpoint)
    return str(tmp_path)


def write_official_bin(tmp_path, weights):
    torch.save({f'model.mm_projector.{k}': v for k, v in weights.items()},
               tmp_path / 'mm_projector.bin')
    return str(tmp_path / 'mm_projector.bin')


def write_safetensors(tmp_path, weights):
    save_file({f'projector.{k}': v for k, v in weights.items()},
              str(tmp_path / 'projector.safetensors'))
    return str(tmp_path / 'projector.safetensors')


@pytest.mark.parametrize('write', [write_mmengine_checkpoint, write_work_dir,
                                   write_official_bin, write_safetensors])
def test_projector_pretrained_loads_those_weights(tokenizer, tmp_path,
                                                  write):
    weights = projector_weights(seed=7)
    path = write(tmp_path, weights)
    state = load_projector_state(path)
    assert state.keys() == weights.keys()
    model = build_llava(tokenizer, projector_pretrained=path)
    loaded = model.projector.state_dict()
    for key, value in weights.items():
        assert torch.equal(loaded[key], value), key


def test_projector_pretrained_reads_a_runner_checkpoint(tmp_path):
    """A checkpoint as mmengine's runner writes it holds the message hub."""
    hub = MessageHub.get_instance('test_llava_projector_checkpoint')
    hub.update_scalar('train/loss', 1.5)
    weights = projector_weights(seed=8)
    path = tmp_path / 'iter_1.pth'
    torch.save({'meta': dict(iter=1), 'message_hub': hub.state_dict(),
                'state_dict': {f'projector.{k}': v
                               for k, v in weights.items()}}, path)
    state = load_projector_state(str(path))
    assert all(torch.equal(state[k], v) for k, v in weights.items())


def test_projector_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='not found.*missing.pth'):
        load_projector_state(str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='without a last_checkpoint'):
        load_projector_state(str(tmp_path))
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))
    with pytest.raises(FileNotFoundError, match='gone.pth'):
        load_projector_state(str(tmp_path))
    torch.save({'state_dict': {'llm.lm_head.weight': torch.zeros(2)}},
               tmp_path / 'llm_only.pth')
    with pytest.raises(KeyError, match='No projector weights'):
        load_projector_state(str(tmp_path / 'llm_only.pth'))


def test_build_with_wrong_projector_shapes_fails(tokenizer, tmp_path):
    weights = {k: v[..., :16].contiguous() if k == '0.weight' else v
               for k, v in projector_weights(seed=9).items()}
    with pytest.raises(RuntimeError, match='size mismatch'):
        build_llava(tokenizer,
                    projector_pretrained=write_safetensors(tmp_path, weights))


def test_bf16_tower_and_llm_with_fp32_projector(tokenizer):
    # The 7B configs load the tower and the LLM in bf16 while the projector
    # (stage 1's only trainable part) keeps fp32 weights.
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='LLaVA', tokenizer=tokenizer, freeze_llm=True,
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            torch_dtype='bfloat16'),
        llm=dict(type='HFCausalLM', config=LLM, torch_dtype='bfloat16')))
    assert next(model.projector.parameters()).dtype == torch.float32
    assert model.llm.dtype == torch.bfloat16
    loss = model(**make_batch(model), mode='loss')['loss']
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.projector.parameters()]
    assert all(g is not None and g.dtype == torch.float32 for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_llm_with_capped_logits_is_refused(tokenizer):
    # Gemma-2 caps its logits after the LM head (config key
    # final_logit_softcapping); the loss applies the head itself, so such an
    # LLM must be refused rather than trained wrongly.
    with pytest.raises(NotImplementedError, match='final_logit_softcapping'):
        build_llava(tokenizer, llm=dict(final_logit_softcapping=30.0))


def test_the_build_says_where_each_part_comes_from(tokenizer, tmp_path,
                                                   monkeypatch):
    lines = []
    monkeypatch.setattr(llava_module, 'print_log',
                        lambda message, **kwargs: lines.append(message))
    reference = build_llava(tokenizer)
    path = tmp_path / 'projector.pth'
    torch.save({f'model.mm_projector.{key}': value for key, value in
                reference.projector.state_dict().items()}, path)
    lines.clear()
    build_llava(tokenizer, projector_pretrained=str(path))
    assert lines[-1].startswith(
        'Built LLaVA: vision tower randomly initialised, LLM randomly '
        f'initialised, projector {path}; trainable parameters: ')


def test_an_answer_cut_at_the_budget_says_so(generator, monkeypatch):
    """Random weights rarely emit EOS: the budget stops them, and each
    answer (and the log) says it was cut. An answer the model ends with EOS
    is not cut."""
    logged = []
    monkeypatch.setattr(llava_module, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    batch = make_batch(generator, generation_samples(generator),
                       with_labels=False)
    answers = generator.generate_answers(**batch)
    assert [answer.cut for answer in answers] == [True, True]
    assert logged == [
        f'2 of 2 answers reached the token budget (max_new_tokens='
        f"{MAX_NEW_TOKENS}) before their end and are cut (samples "
        "['sample-0', 'sample-1']); raise max_new_tokens to let them finish."]
    predicted = generator(**batch, mode='predict')
    assert [s.pred_cut for s in predicted] == [True, True]
    # The LM head made to choose EOS first: every answer ends at once.
    head = generator.llm.get_output_embeddings()
    bias = torch.zeros(head.out_features)
    bias[generator.tokenizer.eos_token_id] = 1e4
    monkeypatch.setattr(head, 'bias', torch.nn.Parameter(bias))
    logged.clear()
    answers = generator.generate_answers(**batch)
    assert [answer.cut for answer in answers] == [False, False]
    assert answers == ['', ''] and logged == []
