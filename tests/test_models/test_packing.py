"""``mmllava/models/packing.py`` and packing in ``LLaVA.loss``.

The packed loss and gradients are checked against the padded path of the
same model and against transformers' ``LlavaForConditionalGeneration`` on
the same weights, run one sample at a time; the attention function against
SDPA with a dense block-diagonal mask; the layout against rows written out
by hand.
"""
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.models.model_inputs import LLaVAInputs
from mmllava.models.packing import (PACKED_SDPA, check_packing_cfg,
                                    pack_batch, packed_sdpa_attention,
                                    plan_rows, use_packed_attention)
from mmllava.registry import MODELS
from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.image_token_counts import fill_image_token_counts
from mmllava.utils.plot import find_scalars_file, load_scalars

IMG = IMAGE_TOKEN_INDEX
IMAGE_SIZE, PATCH_SIZE = 32, 8
NUM_PATCHES = (IMAGE_SIZE // PATCH_SIZE)**2
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, image_size=IMAGE_SIZE,
              patch_size=PATCH_SIZE, projection_dim=16)
#: transformers' Llava marks an image with one id past the vocabulary.
HF_IMAGE_TOKEN_ID = 32000
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=HF_IMAGE_TOKEN_ID + 1, max_position_embeddings=256)

pytestmark = pytest.mark.usefixtures('one_thread')

#: Text only, image first, image mid-text, a longer text, two images: spliced
#: lengths 7, 21, 23, 12 and 37.
SAMPLES = [
    dict(ids=[1, 101, 202, 303, 404, 505, 606],
         labels=[-100, -100, -100, -100, 404, 505, 606], images=0),
    dict(ids=[1, IMG, 707, 808, 909, 1001],
         labels=[-100, -100, -100, -100, 909, 1001], images=1),
    dict(ids=[1, 11, 12, IMG, 13, 14, 15, 16],
         labels=[-100, -100, -100, -100, 13, 14, 15, 16], images=1),
    dict(ids=[1, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31],
         labels=[-100] * 6 + [26, 27, 28, 29, 30, 31], images=0),
    dict(ids=[1, IMG, 41, 42, IMG, 43, 44],
         labels=[-100] * 5 + [43, 44], images=2),
]
LENGTHS = [7, 21, 23, 12, 37]
MAX_LENGTH = 48
#: First-fit decreasing over LENGTHS: 37 + 7, 23 + 21, 12.
ROWS = [[4, 0], [2, 1], [3]]
ROW_WIDTH = 44


def build_llava(tokenizer, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2, select_feature='patch'),
        llm=dict(type='HFCausalLM', config=LLM), tokenizer=tokenizer,
        projector=dict(type='mlp2x_gelu'), **kwargs))


def images(count, seed):
    return torch.randn(count, 3, IMAGE_SIZE, IMAGE_SIZE,
                       generator=torch.Generator().manual_seed(seed))


def make_batch(model, samples=SAMPLES, with_labels=True):
    inputs = dict(
        input_ids=[torch.tensor(s['ids']) for s in samples],
        pixel_values=[images(s['images'], seed) if s['images']
                      else torch.empty(0) for seed, s in enumerate(samples)])
    if with_labels:
        inputs['labels'] = [torch.tensor(s['labels']) for s in samples]
    data_samples = [DataSample(metainfo=dict(sample_id=f'sample-{index}'))
                    for index in range(len(samples))]
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=data_samples))


@pytest.fixture(scope='module')
def models(tokenizer):
    """The padded model and a packed one with the same weights."""
    padded = build_llava(tokenizer)
    packed = build_llava(tokenizer, packing=dict(max_length=MAX_LENGTH))
    packed.load_state_dict(padded.state_dict())
    return padded.train(), packed.train()


def loss_and_grads(model, batch):
    params = [p for p in model.parameters() if p.requires_grad]
    loss = model(**batch, mode='loss')['loss']
    return loss.detach(), torch.autograd.grad(loss, params)


# ---------------------------------------------------------------------------
# Packed loss against the padded path and transformers' Llava.
# ---------------------------------------------------------------------------
def test_packed_loss_and_grads_equal_the_padded_path(models):
    padded, packed = models
    assert packed.llm.config._attn_implementation == PACKED_SDPA
    batch = make_batch(padded)
    expected_loss, expected_grads = loss_and_grads(padded, batch)
    loss, grads = loss_and_grads(packed, batch)
    torch.testing.assert_close(loss, expected_loss, atol=1e-5, rtol=0)
    assert len(grads) == len(expected_grads)
    for grad, expected in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-4)
    assert any(g.abs().max() > 1e-3 for g in grads)


def expand(sequence, fill):
    """Each image placeholder written as ``NUM_PATCHES`` copies of ``fill``."""
    out = []
    for value in sequence:
        out += [fill] * NUM_PATCHES if value == IMG else [value]
    return out


def test_packed_loss_matches_transformers_llava_sample_by_sample(
        models, to_transformers_llava):
    _, packed = models
    reference = to_transformers_llava(packed, HF_IMAGE_TOKEN_ID)
    loss, grads = loss_and_grads(packed, make_batch(packed))
    # One mean over all supervised tokens of the batch: per-sample sums of
    # next-token cross entropy, over the total count.
    total, count = 0, 0
    for seed, sample in enumerate(SAMPLES):
        ids = torch.tensor([expand(sample['ids'], HF_IMAGE_TOKEN_ID)])
        labels = torch.tensor(expand(
            [IMG if i == IMG else label
             for i, label in zip(sample['ids'], sample['labels'])],
            IGNORE_INDEX))
        assert len(labels) == LENGTHS[seed]
        logits = reference(
            input_ids=ids, pixel_values=images(sample['images'], seed)
            if sample['images'] else None).logits[0]
        total = total + F.cross_entropy(logits[:-1], labels[1:],
                                        ignore_index=IGNORE_INDEX,
                                        reduction='sum')
        count += int((labels[1:] != IGNORE_INDEX).sum())
    expected = total / count
    torch.testing.assert_close(loss, expected.detach(), atol=1e-5, rtol=0)
    # Gradients of the LLM's decoder, against the reference's.
    ours = dict(zip([n for n, p in packed.named_parameters()
                     if p.requires_grad], grads))
    theirs = dict(zip(
        [n for n, _ in reference.model.language_model.named_parameters()],
        torch.autograd.grad(
            expected, list(reference.model.language_model.parameters()))))
    assert theirs
    for name, grad in theirs.items():
        torch.testing.assert_close(ours[f'llm.model.{name}'], grad,
                                   atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------
# What the LLM receives, and attention kept inside each sample.
# ---------------------------------------------------------------------------
def decoder_call(model, batch):
    """The decoder's keyword arguments and output in a loss forward."""
    seen = {}

    def record(module, args, kwargs, output):
        seen.update(kwargs, hidden=output.last_hidden_state.detach())

    handle = model.llm.get_decoder().register_forward_hook(
        record, with_kwargs=True)
    with torch.no_grad():
        model(**batch, mode='loss')
    handle.remove()
    return seen


def test_position_ids_restart_per_sample_and_cache_is_off(models):
    _, packed = models
    seen = decoder_call(packed, make_batch(packed))
    expected_positions = torch.tensor([
        list(range(37)) + list(range(7)),
        list(range(23)) + list(range(21)),
        list(range(12)) + list(range(ROW_WIDTH - 12)),
    ])
    assert torch.equal(seen['position_ids'], expected_positions)
    assert seen['inputs_embeds'].shape == (3, ROW_WIDTH, LLM['hidden_size'])
    assert seen['use_cache'] is False
    # Samples, then the last row's padding, row after row.
    offsets = [0, 37, 44, 67, 88, 100, 132]
    assert seen['cu_seq_lens_q'].tolist() == offsets
    assert seen['cu_seq_lens_q'].dtype == torch.int32
    assert seen['max_length_q'] == seen['max_length_k'] == 37


def sample_logits(model, hidden, row, start, length):
    return model.llm.get_output_embeddings()(
        hidden[row, start:start + length])


def test_attention_does_not_cross_samples(models):
    _, packed = models
    batch = make_batch(packed)
    # Sample 4 (37 rows) comes first in row 0, sample 0 after it; sample 2
    # first in row 1, sample 1 after it. Change sample 4's text and sample
    # 2's image.
    changed = {k: v.clone() if torch.is_tensor(v) else v
               for k, v in batch.items()}
    changed['input_ids'][4, 2] = 4242
    changed['pixel_values'][1] = 0  # sample 2's image (sample 1 has the 0th)
    before = decoder_call(packed, batch)['hidden']
    after = decoder_call(packed, changed)['hidden']
    with torch.no_grad():
        for row, start, length in ((0, 37, 7), (1, 23, 21)):
            torch.testing.assert_close(
                sample_logits(packed, after, row, start, length),
                sample_logits(packed, before, row, start, length),
                atol=1e-6, rtol=0)
        for row, length in ((0, 37), (1, 23)):
            assert not torch.allclose(before[row, :length],
                                      after[row, :length], atol=1e-3)
    # Control: plain causal SDPA on the same rows lets the change through.
    packed.llm.set_attn_implementation('sdpa')
    try:
        leaked = decoder_call(packed, changed)['hidden']
        plain = decoder_call(packed, batch)['hidden']
    finally:
        packed.llm.set_attn_implementation(PACKED_SDPA)
    assert not torch.allclose(leaked[0, 37:44], plain[0, 37:44], atol=1e-3)


def test_too_long_sample_is_named(tokenizer):
    model = build_llava(tokenizer, packing=dict(max_length=30))
    with pytest.raises(ValueError,
                       match=r"'sample-4' is 37 tokens .* max_length=30"):
        model(**make_batch(model), mode='loss')


def test_generation_is_unchanged(models):
    padded, packed = models
    batch = make_batch(padded, SAMPLES[1:3], with_labels=False)
    padded.eval(), packed.eval()
    try:
        # Left-padded prompts of different lengths: the padding mask must
        # reach the attention as with 'sdpa'.
        with torch.no_grad():
            expected = padded.llm.generate(
                **_generation_inputs(padded, batch), max_new_tokens=3,
                do_sample=False, pad_token_id=0)
            got = packed.llm.generate(
                **_generation_inputs(packed, batch), max_new_tokens=3,
                do_sample=False, pad_token_id=0)
    finally:
        padded.train(), packed.train()
    assert torch.equal(got, expected)


def _generation_inputs(model, batch):
    embeds, mask, _ = model.embed_inputs(
        LLaVAInputs(batch['input_ids'], batch['attention_mask'],
                    pixel_values=batch['pixel_values'],
                    num_images=batch['num_images']), 'left')
    assert not mask.all()
    return dict(inputs_embeds=embeds, attention_mask=mask)


# ---------------------------------------------------------------------------
# The pieces.
# ---------------------------------------------------------------------------
def test_rows_are_first_fit_decreasing():
    assert plan_rows(LENGTHS, MAX_LENGTH) == ROWS
    assert plan_rows([5, 5, 5], 10) == [[0, 1], [2]]
    assert plan_rows([10], 10) == [[0]]
    with pytest.raises(ValueError, match="Sample 'b' is 11 tokens"):
        plan_rows([3, 11], 10, sample_names=['a', 'b'])


def test_pack_batch_layout():
    # Three samples of lengths 3, 2 and 4 (embedding row i holds 10 * sample
    # + position), right-padded to 4.
    lengths = [3, 2, 4]
    embeds = torch.zeros(3, 4, 1)
    labels = torch.full((3, 4), IGNORE_INDEX)
    for index, length in enumerate(lengths):
        embeds[index, :length, 0] = 10. * index + torch.arange(length)
        labels[index, :length] = 100 * index + torch.arange(length)
    mask = (torch.arange(4)[None] < torch.tensor(lengths)[:, None]).long()
    labels[1, 1] = IGNORE_INDEX
    packed = pack_batch(embeds, mask, labels, max_length=5)
    # Decreasing: sample 2 (4) opens row 0, sample 0 (3) row 1, sample 1 (2)
    # joins row 1.
    assert packed.rows == [[2], [0, 1]]
    assert packed.inputs_embeds[..., 0].tolist() == [
        [20., 21., 22., 23., 0.], [0., 1., 2., 10., 11.]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 0],
                                            [0, 1, 2, 0, 1]]
    # Each position's target is its own sample's next label; a sample's last
    # position and the padding predict nothing.
    assert packed.targets.tolist() == [
        [201, 202, 203, -100, -100], [1, 2, -100, -100, -100]]
    assert packed.cu_seq_lens.tolist() == [0, 4, 5, 8, 10]
    assert packed.max_seq_len == 4


def dense_reference(query, key, value, segments):
    """SDPA with one block-diagonal causal mask over each row."""
    rows, _, length, _ = query.shape
    ids = torch.zeros(rows * length, dtype=torch.long)
    for number, (start, end) in enumerate(zip(segments, segments[1:])):
        ids[start:end] = number
    ids = ids.view(rows, length)
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    mask = (ids[:, :, None] == ids[:, None, :]) & causal
    groups = query.shape[1] // key.shape[1]
    out = F.scaled_dot_product_attention(
        query, key.repeat_interleave(groups, 1),
        value.repeat_interleave(groups, 1), attn_mask=mask[:, None])
    return out.transpose(1, 2)


def test_packed_sdpa_matches_a_block_diagonal_mask():
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(2, 4, 9, 8, generator=generator)
    key, value = torch.randn(2, 2, 2, 9, 8, generator=generator)
    module = types.SimpleNamespace(num_key_value_groups=2, is_causal=True)
    segments = [0, 4, 9, 11, 16, 18]
    offsets = torch.tensor(segments, dtype=torch.int32)
    out, weights = packed_sdpa_attention(
        module, query, key, value, None, cu_seq_lens_q=offsets,
        cu_seq_lens_k=offsets)
    assert weights is None and out.shape == (2, 9, 4, 8)
    torch.testing.assert_close(out, dense_reference(query, key, value,
                                                    segments))
    # Without segments it is plain causal attention over each row.
    plain, _ = packed_sdpa_attention(module, query, key, value, None)
    torch.testing.assert_close(plain, dense_reference(query, key, value,
                                                      [0, 9, 18]))


def test_packed_sdpa_refuses_what_it_would_drop():
    query = torch.zeros(1, 2, 4, 8)
    module = types.SimpleNamespace(num_key_value_groups=1, is_causal=True)
    offsets = torch.tensor([0, 4], dtype=torch.int32)
    with pytest.raises(NotImplementedError, match='sliding_window'):
        packed_sdpa_attention(module, query, query, query, None,
                              cu_seq_lens_q=offsets, sliding_window=2)
    with pytest.raises(ValueError, match='key length 6'):
        packed_sdpa_attention(module, query, torch.zeros(1, 2, 6, 8),
                              torch.zeros(1, 2, 6, 8), None,
                              cu_seq_lens_q=offsets)


def fake_llm(implementation):
    return types.SimpleNamespace(config=types.SimpleNamespace(
        _attn_implementation=implementation))


def test_packed_attention_choice():
    # Flash attention reads the varlen arguments itself.
    assert use_packed_attention(fake_llm('flash_attention_2')) \
        == 'flash_attention_2'
    with pytest.raises(ValueError, match="not 'flex_attention'"):
        use_packed_attention(fake_llm('flex_attention'))


@pytest.mark.parametrize('packing', [
    dict(), dict(max_length=0), dict(max_length=8, pad_to=16),
    dict(max_length='8')])
def test_packing_cfg_is_checked(packing):
    with pytest.raises(ValueError, match='packing must be'):
        check_packing_cfg(packing)
    assert check_packing_cfg(None) is None
    assert check_packing_cfg(dict(max_length=8)) == 8


# ---------------------------------------------------------------------------
# Under the modality-aware sampler, and in a real training run.
# ---------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]
STAGE2_CONFIG = REPO / 'configs/llava/llava-tiny_demo_ft.py'
DEMO_MAX_LENGTH = 512  # the demo's model max length


def test_packed_loss_equals_padded_under_the_length_grouped_sampler(
        demo_workspace, monkeypatch):
    monkeypatch.chdir(demo_workspace)
    cfg = fill_image_token_counts(Config.fromfile(str(STAGE2_CONFIG)))
    assert cfg.train_dataloader.sampler.type == 'LengthGroupedSampler'
    cfg.train_dataloader.update(batch_size=4, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.sampler.batch_size = 4
    cfg.train_dataloader.dataset.indices = 8
    cfg.model.projector_pretrained = None
    with DefaultScope.overwrite_default_scope('mmllava'):
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        torch.manual_seed(0)
        padded = MODELS.build(cfg.model)
        packed = MODELS.build(dict(
            cfg.model, packing=dict(max_length=DEMO_MAX_LENGTH)))
    packed.load_state_dict(padded.state_dict())
    rows = []
    for data in loader:
        batch = padded.data_preprocessor(data, training=True)
        with torch.no_grad():
            expected = padded(**batch, mode='loss')['loss']
            loss = packed(**batch, mode='loss')['loss']
            rows.append(decoder_call(packed, batch)['inputs_embeds'].shape[0])
        torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)
    # Packing did pack: fewer rows than samples.
    assert len(rows) == 2 and sum(rows) < 8


@pytest.mark.slow
def test_train_with_packing(demo_workspace):
    """tools/train.py with packing switched on from the command line."""
    options = (
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'param_scheduler.0.end=0.5', 'param_scheduler.1.begin=0.5',
        'model.projector_pretrained=None',
        'train_dataloader.dataset.indices=8', 'train_dataloader.batch_size=4',
        'train_dataloader.sampler.batch_size=4',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'custom_hooks=[]', 'default_hooks.logger.interval=1',
        f'model.packing.max_length={DEMO_MAX_LENGTH}')
    work_dir = demo_workspace / 'packed_run'
    run = subprocess.run(
        [sys.executable, str(REPO / 'tools/train.py'), str(STAGE2_CONFIG),
         '--work-dir', str(work_dir), '--cfg-options', *options],
        cwd=demo_workspace, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=scaled_timeout(300))
    assert run.returncode == 0, run.stdout[-4000:]
    iters, losses = load_scalars(find_scalars_file(work_dir))
    assert iters == [1, 2]
    assert all(math.isfinite(loss) and loss > 0 for loss in losses)
    dumped = Config.fromfile(str(work_dir / STAGE2_CONFIG.name))
    assert dumped.model.packing == dict(max_length=DEMO_MAX_LENGTH)
