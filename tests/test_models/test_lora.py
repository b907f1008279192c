"""``mmllava/models/lora.py``: LoRA on the LLM and the vision tower, merging,
and QLoRA's build-time error.

The LoRA forward is checked against a plain model whose weights are the
base weights plus ``B @ A * alpha / r``, written out here; training against
what the recipe promises (base weights fixed, adapters and projector move,
the loss falls).
"""
import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample
from PIL import Image
from skimage import data as photos

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.models.language_models import build_causal_lm
from mmllava.models.lora import merge_lora_weights
from mmllava.registry import MODELS

IMAGE_SIZE = 32
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=8)
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=32000, max_position_embeddings=256)
LLM_LINEAR = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj',
              'down_proj')
TOWER_LINEAR = ('q_proj', 'k_proj', 'v_proj', 'out_proj', 'fc1', 'fc2')
R, ALPHA = 4, 8

pytestmark = pytest.mark.usefixtures('one_thread')


def build(tokenizer, seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2),
        llm=dict(type='HFCausalLM', config=LLM),
        tokenizer=tokenizer,
        projector=dict(type='mlp2x_gelu'))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def build_lora(tokenizer, **lora):
    return build(tokenizer, lora=dict(dict(r=R, alpha=ALPHA), **lora))


def photo(name):
    image = Image.fromarray(getattr(photos, name)()).convert('RGB')
    array = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE)), np.float32)
    return torch.from_numpy(array / 127.5 - 1).permute(2, 0, 1)


def tokenize(tokenizer, question, answer):
    """A vicuna-style turn with the image first; only the answer is
    supervised."""
    prompt = tokenizer(f'USER: \n{question} ASSISTANT:').input_ids
    reply = tokenizer(f' {answer}</s>', add_special_tokens=False).input_ids
    ids = prompt[:1] + [IMAGE_TOKEN_INDEX] + prompt[1:] + reply
    labels = [IGNORE_INDEX] * (len(prompt) + 1) + reply
    return torch.tensor(ids), torch.tensor(labels)


@pytest.fixture(scope='module')
def batch_inputs(tokenizer):
    """Two photos and their questions and answers, collated."""
    pairs = [tokenize(tokenizer, 'What is in the photo?',
                      'An astronaut in a white suit.'),
             tokenize(tokenizer, 'What animal is this?', 'A cat.')]
    return dict(inputs=dict(
        input_ids=[ids for ids, _ in pairs],
        labels=[labels for _, labels in pairs],
        pixel_values=[photo('astronaut')[None], photo('chelsea')[None]]),
        data_samples=[DataSample(metainfo=dict(sample_id=str(index)))
                      for index in range(2)])


def make_batch(model, batch_inputs):
    return model.data_preprocessor(batch_inputs)


def adapted_modules(module):
    """Names of the layers holding an adapter."""
    return {name.rsplit('.lora_A', 1)[0] for name, _ in
            module.named_parameters() if '.lora_A.' in name}


def randomize_adapters(model, seed=1):
    """LoRA's B starts at zero (the adapter starts as a no-op)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if 'lora_B' in name:
                parameter.copy_(torch.randn(parameter.shape,
                                            generator=generator) * 0.1)


def test_llm_adapters_follow_the_official_targets(tokenizer):
    model = build_lora(tokenizer)
    expected = {f'model.layers.{layer}.{block}.{name}'
                for layer in range(2)
                for block, names in (('self_attn', LLM_LINEAR[:4]),
                                     ('mlp', LLM_LINEAR[4:]))
                for name in names}
    assert adapted_modules(model.llm) == expected
    assert not adapted_modules(model.vision_encoder)
    assert not adapted_modules(model.projector)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    lora = {n for n in trainable if '.lora_' in n}
    assert len(lora) == 2 * len(expected)
    projector = {n for n, _ in model.named_parameters()
                 if n.startswith('projector.')}
    assert trainable == lora | projector
    # The adapters' sizes: A is (r, in), B is (out, r).
    q_proj = model.llm.get_decoder().layers[0].self_attn.q_proj
    assert q_proj.lora_A['default'].weight.shape == (R, 64)
    assert q_proj.lora_B['default'].weight.shape == (64, R)
    assert q_proj.scaling['default'] == ALPHA / R
    counts = model.trainable_parameter_counts()
    assert counts['vision_encoder'] == 0
    assert counts['llm'] == sum(p.numel() for n, p in
                                model.llm.named_parameters() if 'lora_' in n)


def test_explicit_targets(tokenizer):
    model = build_lora(tokenizer, target=['q_proj', 'v_proj'])
    assert {name.rsplit('.', 1)[1] for name in adapted_modules(model.llm)} \
        == {'q_proj', 'v_proj'}


def plain_weights_with_deltas(lora_model, scaling):
    """The LoRA model's weights in plain keys, each adapted weight replaced
    by ``W + B @ A * scaling`` (the LoRA paper's reparametrisation)."""
    state = lora_model.state_dict()
    plain = {}
    for key, value in state.items():
        if '.lora_' in key:
            continue
        if '.base_layer.' in key:
            layer, _, leaf = key.partition('.base_layer.')
            if leaf == 'weight':
                a = state[f'{layer}.lora_A.default.weight']
                b = state[f'{layer}.lora_B.default.weight']
                value = value + b @ a * scaling
            key = f'{layer}.{leaf}'
        plain[key] = value
    return plain


@pytest.mark.parametrize('vision', [False, True])
def test_lora_forward_is_base_plus_low_rank_delta(tokenizer, batch_inputs,
                                                  vision):
    lora = dict(vision_encoder=dict(r=R, alpha=ALPHA)) if vision else {}
    model = build_lora(tokenizer, **lora).eval()
    randomize_adapters(model)
    reference = build(tokenizer, seed=5).eval()
    reference.load_state_dict(plain_weights_with_deltas(model, ALPHA / R))
    batch = make_batch(model, batch_inputs)
    with torch.no_grad():
        logits = model(**batch, mode='tensor')
        expected = reference(**batch, mode='tensor')
        loss = model(**batch, mode='loss')['loss']
        expected_loss = reference(**batch, mode='loss')['loss']
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(loss, expected_loss, atol=1e-5, rtol=0)


def test_untrained_adapters_leave_the_model_unchanged(tokenizer,
                                                      batch_inputs):
    model = build_lora(tokenizer).eval()
    base = build(tokenizer).eval()
    batch = make_batch(model, batch_inputs)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch, mode='tensor'),
                                   base(**batch, mode='tensor'),
                                   atol=1e-6, rtol=0)


def test_generation_runs_through_the_adapters(tokenizer):
    model = build_lora(tokenizer).eval()
    randomize_adapters(model)
    reference = build(tokenizer, seed=5).eval()
    reference.load_state_dict(plain_weights_with_deltas(model, ALPHA / R))
    base = build(tokenizer).eval()
    prompt = dict(input_ids=torch.tensor([[1, 3148, 1001, 29901]]),
                  attention_mask=torch.ones(1, 4, dtype=torch.long))
    with torch.no_grad():
        answers = [m.generate_answers(**prompt, max_new_tokens=6)
                   for m in (model, reference, base)]
    assert answers[0] == answers[1]
    assert answers[0] != answers[2]


def train_steps(model, batch, steps, lr=1e-2):
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(**batch, mode='loss')['loss']
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_lora_trains_adapters_and_projector_only(tokenizer, batch_inputs):
    model = build_lora(tokenizer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = train_steps(model, make_batch(model, batch_inputs), steps=6)
    # A random LLM starts near log(32000) = 10.4; each step lowers it.
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < losses[0] - 0.3, losses
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    expected = {k for k in before
                if '.lora_' in k or k.startswith('projector.')}
    assert changed == expected


def test_vision_lora_trains_the_towers_adapters_only(tokenizer,
                                                     batch_inputs):
    model = build_lora(tokenizer, vision_encoder=dict(r=2, alpha=4))
    tower = model.vision_encoder
    # select_layer=-2 of 3 layers: layers 0 and 1 feed the features.
    assert adapted_modules(tower.model) == {
        f'encoder.layers.{layer}.{block}.{name}'
        for layer in range(2)
        for block, names in (('self_attn', TOWER_LINEAR[:4]),
                             ('mlp', TOWER_LINEAR[4:]))
        for name in names}
    trainable = {n for n, p in tower.named_parameters() if p.requires_grad}
    assert trainable and all('.lora_' in n for n in trainable)
    assert tower.model.encoder.layers[0].self_attn.q_proj.lora_A[
        'default'].weight.shape == (2, 32)
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    train_steps(model, make_batch(model, batch_inputs), steps=2)
    after = tower.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {k for k in before if '.lora_' in k}


def test_vision_lora_keeps_the_partly_trainable_tower(tokenizer):
    model = build(tokenizer, vision_encoder=dict(
        type='CLIPVisionEncoder', config=VISION, select_layer=-2,
        trainable_from_layer=1), lora=dict(r=R, vision_encoder=dict(r=2)))
    layers = model.vision_encoder.layers
    assert all(p.requires_grad for n, p in layers[1].named_parameters())
    assert {n for n, p in layers[0].named_parameters() if p.requires_grad} \
        == {n for n, _ in layers[0].named_parameters() if '.lora_' in n}


def test_lora_config_errors(tokenizer):
    with pytest.raises(ValueError, match='freeze_llm=False'):
        build(tokenizer, freeze_llm=True, lora=dict(r=R))
    with pytest.raises(ValueError, match='freeze_vision_encoder=True'):
        build(tokenizer, freeze_vision_encoder=False,
              lora=dict(r=R, vision_encoder=dict(r=2)))
    with pytest.raises(KeyError, match="'rank'.*model.lora"):
        build(tokenizer, lora=dict(rank=R))
    with pytest.raises(KeyError, match='model.lora.vision_encoder'):
        build(tokenizer, lora=dict(r=R, vision_encoder=dict(bias='all')))


@pytest.mark.parametrize('vision', [False, True])
def test_merge_gives_plain_keys_and_the_same_logits(tokenizer, batch_inputs,
                                                    vision):
    lora = dict(vision_encoder=dict(r=R, alpha=ALPHA)) if vision else {}
    model = build_lora(tokenizer, **lora).eval()
    randomize_adapters(model)
    batch = make_batch(model, batch_inputs)
    expected_weights = plain_weights_with_deltas(model, ALPHA / R)
    with torch.no_grad():
        expected = model(**batch, mode='tensor')
    merged = merge_lora_weights(model)
    assert merged == 14 + (12 if vision else 0)
    plain = build(tokenizer, seed=3).eval()
    state = model.state_dict()
    assert state.keys() == plain.state_dict().keys()
    for key, value in expected_weights.items():
        torch.testing.assert_close(state[key], value, atol=1e-6, rtol=0)
    plain.load_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch, mode='tensor'), expected,
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(plain(**batch, mode='tensor'), expected,
                                   atol=1e-5, rtol=0)


def test_qlora_needs_bitsandbytes_and_a_gpu(tmp_path, monkeypatch,
                                            tokenizer):
    build_causal_lm(config=LLM).save_pretrained(tmp_path / 'llm')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(RuntimeError, match='bitsandbytes.*a CUDA GPU'):
        build_causal_lm(pretrained=str(tmp_path / 'llm'),
                        quantization='4bit')
    # Through the model config, at build time.
    with pytest.raises(RuntimeError, match='QLoRA'):
        build(tokenizer, lora=dict(r=R),
              llm=dict(type='HFCausalLM', pretrained=str(tmp_path / 'llm'),
                       quantization='4bit'))
    with pytest.raises(ValueError, match="'4bit'"):
        build_causal_lm(pretrained=str(tmp_path / 'llm'), quantization='3bit')
