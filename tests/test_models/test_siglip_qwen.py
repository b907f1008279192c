"""The LLaVA-NeXT 2024-05 family's parts: SigLIP-SO400M and Qwen-1.5.

- The SigLIP tower of LLaVA-NeXT (``SigLipVisionTower``: the last encoder
  layer deleted, the head replaced by an identity, the last hidden state
  taken) equals our ``SiglipVisionEncoder`` with ``select_layer=-2``, checked
  against transformers' ``SiglipVisionModel`` cut the official way, at the
  SO400M geometry (patch 14, 384 px: 27x27 = 729 patches) with a tiny width.
- Qwen-1.5 is ``qwen2`` in transformers: ``HFCausalLM`` builds it with tied
  embeddings (as the 0.5B model), saves and reloads it.
- A tiny SigLIP + Qwen LLaVA gives transformers' Llava logits and loss,
  trains (the loss falls) and generates, stopping at ``<|im_end|>``.
"""
import copy

import pytest
import torch
from mmpretrain.structures import DataSample
from torch import nn
from transformers import (AutoTokenizer, Qwen2ForCausalLM, SiglipVisionConfig,
                          SiglipVisionModel)

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.conversation import build_generation_prompt, tokenize_conversation
from mmllava.registry import MODELS
from mmllava.templates import get_template
from mmllava.testing.demo.qwen_tokenizer import write_qwen_tokenizer

pytestmark = pytest.mark.usefixtures('one_thread')

#: google/siglip-so400m-patch14-384's geometry, with a tiny width and depth.
SO400M_GEOMETRY = dict(image_size=384, patch_size=14, hidden_size=32,
                       intermediate_size=64, num_hidden_layers=3,
                       num_attention_heads=4)
#: A smaller image for the end-to-end tests (16 patches an image).
SMALL_SIGLIP = dict(SO400M_GEOMETRY, image_size=56)
NUM_PATCHES = (56 // 14)**2
#: Qwen1.5-0.5B's shape scaled down: tied embeddings, biased q/k/v.
QWEN = dict(model_type='qwen2', hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=512,
            tie_word_embeddings=True)


@pytest.fixture(scope='module')
def qwen_folder(tmp_path_factory):
    return write_qwen_tokenizer(str(tmp_path_factory.mktemp('qwen')))


@pytest.fixture(scope='module')
def qwen_tokenizer(qwen_folder):
    return AutoTokenizer.from_pretrained(qwen_folder)


# ---------------------------------------------------------------------------
# SigLIP: LLaVA-NeXT's cut tower = the penultimate hidden state.
# ---------------------------------------------------------------------------
def llava_next_siglip_tower(model: SiglipVisionModel) -> SiglipVisionModel:
    """LLaVA-NeXT's ``SigLipVisionTower.load_model``, on a copy (it cuts
    ``vision_model.encoder`` / ``vision_model.head``: transformers 5 dropped
    the ``vision_model`` level)."""
    tower = copy.deepcopy(model)
    del tower.encoder.layers[-1:]
    tower.head = nn.Identity()
    return tower


def test_siglip_so400m_geometry_matches_llava_next_tower(tmp_path):
    torch.manual_seed(0)
    model = SiglipVisionModel(SiglipVisionConfig(**SO400M_GEOMETRY)).eval()
    model.save_pretrained(tmp_path / 'siglip')
    encoder = MODELS.build(dict(type='SiglipVisionEncoder',
                                pretrained=str(tmp_path / 'siglip'),
                                select_layer=-2))
    pixels = torch.randn(2, 3, 384, 384,
                         generator=torch.Generator().manual_seed(1))
    tower = llava_next_siglip_tower(model)
    with torch.no_grad():
        # The official forward: the last hidden state of the cut tower.
        expected = tower(pixels, output_hidden_states=True).hidden_states[-1]
        features = encoder(pixels)
        full = model(pixels, output_hidden_states=True)
    # (N, 3, 384, 384) -> (N, 27 * 27, C_vision); SigLIP has no CLS row.
    assert features.shape == (2, 729, 32)
    torch.testing.assert_close(features, expected)
    assert len(tower.encoder.layers) == 2
    # Neither the last layer nor the post-layernorm output.
    assert not torch.allclose(features, full.hidden_states[-1], atol=1e-3)
    assert not torch.allclose(features, full.last_hidden_state, atol=1e-3)


# ---------------------------------------------------------------------------
# Qwen-1.5 through HFCausalLM.
# ---------------------------------------------------------------------------
def test_qwen2_builds_tied_saves_and_reloads(qwen_tokenizer, tmp_path):
    torch.manual_seed(0)
    llm = MODELS.build(dict(type='HFCausalLM', config=dict(
        QWEN, vocab_size=len(qwen_tokenizer)))).eval()
    assert isinstance(llm, Qwen2ForCausalLM)
    assert llm.get_output_embeddings().weight is \
        llm.get_input_embeddings().weight
    assert llm.model.layers[0].self_attn.q_proj.bias is not None
    llm.save_pretrained(tmp_path / 'llm')
    loaded = MODELS.build(dict(type='HFCausalLM',
                               pretrained=str(tmp_path / 'llm'))).eval()
    assert loaded.get_output_embeddings().weight is \
        loaded.get_input_embeddings().weight
    ids = torch.tensor([qwen_tokenizer('<|im_start|>user\nHi').input_ids])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, llm(ids).logits)


# ---------------------------------------------------------------------------
# SigLIP + Qwen LLaVA.
# ---------------------------------------------------------------------------
def build_llava(tokenizer, seed=0, **kwargs):
    torch.manual_seed(seed)
    cfg = dict(
        type='LLaVA',
        vision_encoder=dict(type='SiglipVisionEncoder', config=SMALL_SIGLIP,
                            select_layer=-2),
        llm=dict(type='HFCausalLM', config=dict(
            QWEN, vocab_size=len(tokenizer))),
        tokenizer=tokenizer, projector=dict(type='mlp2x_gelu'),
        template='qwen_1_5', freeze_llm=False)
    cfg.update(kwargs)
    return MODELS.build(cfg)


RECORDS = [
    [{'from': 'human', 'value': '<image>\nWhat is in the picture?'},
     {'from': 'gpt', 'value': 'A red bus.'}],
    [{'from': 'human', 'value': 'Describe it.\n<image>'},
     {'from': 'gpt', 'value': 'Two cats sleep on a blue sofa.'},
     {'from': 'human', 'value': 'How many?'},
     {'from': 'gpt', 'value': 'Two.'}],
]


def pixel_values(seed):
    return torch.randn(1, 3, 56, 56,
                       generator=torch.Generator().manual_seed(seed))


def make_batch(model, samples):
    """``samples``: (input_ids, labels or None) pairs, one image each."""
    inputs = dict(input_ids=[torch.tensor(ids) for ids, _ in samples],
                  pixel_values=[pixel_values(i) for i in range(len(samples))])
    if samples[0][1] is not None:
        inputs['labels'] = [torch.tensor(labels) for _, labels in samples]
    data_samples = [DataSample(metainfo=dict(sample_id=f'sample-{i}'))
                    for i in range(len(samples))]
    return model.data_preprocessor(dict(inputs=inputs,
                                        data_samples=data_samples))


def training_samples(tokenizer):
    return [tokenize_conversation(turns, get_template('qwen_1_5'), tokenizer,
                                  has_image=True) for turns in RECORDS]


def test_logits_and_loss_match_transformers_llava(qwen_tokenizer,
                                                  to_transformers_llava):
    image_token_id = len(qwen_tokenizer)
    model = build_llava(qwen_tokenizer, llm=dict(
        type='HFCausalLM',
        config=dict(QWEN, vocab_size=image_token_id + 1))).eval()
    reference = to_transformers_llava(model, image_token_id)
    # SigLIP has no CLS row to drop: llava-hf's 'full' strategy.
    reference.config.vision_feature_select_strategy = 'full'
    samples = training_samples(qwen_tokenizer)
    batch = make_batch(model, samples)

    def expand(row, fill):
        out = []
        for token in row:
            out += [fill] * NUM_PATCHES if token == IMAGE_TOKEN_INDEX \
                else [token]
        return out

    width = max(len(expand(ids, 0)) for ids, _ in samples)

    def pad(rows, value):
        return torch.tensor([row + [value] * (width - len(row))
                             for row in rows])

    ids = pad([expand(ids, image_token_id) for ids, _ in samples], 0)
    mask = pad([[1] * len(expand(ids, 0)) for ids, _ in samples], 0)
    # Image rows are unsupervised.
    labels = pad([expand([t if t == IMAGE_TOKEN_INDEX else label
                          for t, label in zip(ids, labels)], IGNORE_INDEX)
                  for ids, labels in samples], IGNORE_INDEX)
    pixels = torch.cat([pixel_values(0), pixel_values(1)])
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != 'labels'},
                       mode='tensor')
        loss = model(**batch, mode='loss')['loss']
        expected = reference(input_ids=ids, attention_mask=mask,
                             pixel_values=pixels, labels=labels)
    real = mask.bool()
    torch.testing.assert_close(logits[real], expected.logits[real],
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(loss, expected.loss, atol=1e-5, rtol=1e-5)


def test_trains_and_generates_until_im_end(qwen_tokenizer):
    model = build_llava(qwen_tokenizer, generation_cfg=dict(
        max_new_tokens=24, do_sample=False))
    assert model.tokenizer.eos_token == get_template('qwen_1_5').stop
    samples = training_samples(qwen_tokenizer)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    losses = []
    for _ in range(40):
        loss = model(**make_batch(model, samples), mode='loss')['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses
    # The frozen SigLIP tower did not move; the projector and LLM did.
    assert not any(p.requires_grad for p in model.vision_encoder.parameters())

    model.eval()
    prompt = build_generation_prompt(RECORDS[0][:1],
                                     get_template('qwen_1_5'),
                                     qwen_tokenizer, has_image=True)
    generated = []
    original = model.llm.generate

    def spy(*args, **kwargs):
        generated.append(original(*args, **kwargs))
        return generated[-1]

    model.llm.generate = spy
    prediction, = model(**make_batch(model, [(prompt, None)]),
                        mode='predict')
    ids = generated[0][0].tolist()
    im_end = qwen_tokenizer.convert_tokens_to_ids('<|im_end|>')
    assert im_end in ids and len(ids) < 24
    assert prediction.pred_text == 'A red bus.'
