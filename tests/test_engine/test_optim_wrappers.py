"""``mmllava/engine/optim_wrappers.py``: a zero or non-finite gradient moves
no weight, where mmengine's plain wrapper would move them; a finite one
steps exactly as the plain wrapper does."""
import logging

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.engine.optim_wrappers import (SKIPPED_STEPS_KEY,
                                           GuardedAmpOptimWrapper,
                                           GuardedOptimWrapper)
from mmllava.registry import MODELS, OPTIM_WRAPPERS


@pytest.fixture(autouse=True)
def fresh_message_hub():
    """Each test counts its own skips."""
    MessageHub.get_current_instance().runtime_info.pop(SKIPPED_STEPS_KEY,
                                                       None)


def linear(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


def adamw(model) -> torch.optim.AdamW:
    # Weight decay moves weights even on a zero gradient: the plain wrapper
    # shows that the guard is what keeps them still.
    return torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)


def weights(model) -> list:
    return [parameter.detach().clone() for parameter in model.parameters()]


def same(left, right) -> bool:
    return all(torch.equal(a, b) for a, b in zip(left, right))


def regression_loss(model, seed: int = 1) -> torch.Tensor:
    inputs = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))
    return model(inputs).square().mean()


def one_real_step(wrapper_type, model):
    """A finite step first, so that AdamW holds momentum afterwards."""
    wrapper = wrapper_type(optimizer=adamw(model))
    wrapper.update_params(regression_loss(model))
    return wrapper


@pytest.mark.parametrize('bad_loss', [
    lambda model: (regression_loss(model) * 0),
    lambda model: regression_loss(model) * float('nan'),
    lambda model: regression_loss(model) * float('inf'),
], ids=['zero', 'nan', 'inf'])
def test_bad_gradients_move_no_weight(bad_loss):
    guarded, plain = linear(), linear()
    guarded_wrapper = one_real_step(GuardedOptimWrapper, guarded)
    plain_wrapper = one_real_step(OptimWrapper, plain)
    before = weights(guarded)
    assert same(before, weights(plain))

    guarded_wrapper.update_params(bad_loss(guarded))
    plain_wrapper.update_params(bad_loss(plain))

    assert same(weights(guarded), before)
    assert not same(weights(plain), before)
    assert MessageHub.get_current_instance().get_info(SKIPPED_STEPS_KEY) == 1
    # The skipped step leaves no gradient behind for the next one.
    assert all(parameter.grad is None for parameter in guarded.parameters())


def test_finite_steps_equal_the_plain_wrapper():
    guarded, plain = linear(), linear()
    guarded_wrapper = GuardedOptimWrapper(optimizer=adamw(guarded),
                                          clip_grad=dict(max_norm=0.1))
    plain_wrapper = OptimWrapper(optimizer=adamw(plain),
                                 clip_grad=dict(max_norm=0.1))
    for seed in range(3):
        guarded_wrapper.update_params(regression_loss(guarded, seed))
        plain_wrapper.update_params(regression_loss(plain, seed))
    assert same(weights(guarded), weights(plain))
    assert MessageHub.get_current_instance().get_info(
        SKIPPED_STEPS_KEY) is None


def test_a_nan_micro_batch_skips_its_accumulation_window():
    model = linear()
    wrapper = GuardedOptimWrapper(optimizer=adamw(model),
                                  accumulative_counts=2)
    wrapper.initialize_count_status(model, init_counts=0, max_counts=4)
    start = weights(model)
    wrapper.update_params(regression_loss(model, 1))
    wrapper.update_params(regression_loss(model, 2) * float('nan'))
    assert same(weights(model), start)
    # The next window starts clean and steps.
    wrapper.update_params(regression_loss(model, 3))
    wrapper.update_params(regression_loss(model, 4))
    assert all(torch.isfinite(w).all() for w in weights(model))
    assert not same(weights(model), start)


class Records(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_the_skip_is_logged_with_its_iteration():
    MessageHub.get_current_instance().update_info('iter', 6)
    model = linear()
    wrapper = GuardedOptimWrapper(optimizer=adamw(model))
    records = Records()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    try:
        wrapper.update_params(regression_loss(model) * float('nan'))
    finally:
        logger.removeHandler(records)
    logged = '\n'.join(records.messages)
    assert 'Skipped the optimizer step at iteration 7' in logged
    assert 'gradient norm is nan' in logged


def test_an_active_loss_scaler_keeps_the_overflow():
    """fp16 loss scaling must see an overflow to lower its scale: the guard
    leaves that step to the scaler and still skips a zero gradient."""
    model = linear()
    wrapper = GuardedOptimWrapper(optimizer=adamw(model))
    wrapper.loss_scaler = torch.amp.GradScaler('cpu')
    for parameter in model.parameters():
        parameter.grad = torch.full_like(parameter, float('inf'))
    assert wrapper._reason_to_skip() is None
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)
    assert 'zero' in wrapper._reason_to_skip()


def test_wrappers_build_from_configs():
    model = linear()
    for name in ('GuardedOptimWrapper', 'GuardedAmpOptimWrapper'):
        wrapper = OPTIM_WRAPPERS.build(dict(
            type=name, optimizer=adamw(model)))
        assert type(wrapper).__name__ == name


# A real LLaVA: a batch whose every label is masked.
# ---------------------------------------------------------------------------
def tiny_llava(tokenizer):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(
            type='CLIPVisionEncoder',
            config=dict(hidden_size=32, intermediate_size=64,
                        num_hidden_layers=2, num_attention_heads=4,
                        image_size=32, patch_size=8)),
        llm=dict(type='HFCausalLM', config=dict(
            model_type='llama', hidden_size=32, intermediate_size=64,
            num_hidden_layers=1, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=32000,
            max_position_embeddings=128)),
        tokenizer=tokenizer,
        freeze_llm=False,
        projector=dict(type='mlp2x_gelu')))


def llava_batch(masked: bool) -> dict:
    ids = [1, IMAGE_TOKEN_INDEX, 707, 808, 909, 1001]
    labels = [IGNORE_INDEX] * 4 + [909, 1001]
    if masked:
        labels = [IGNORE_INDEX] * len(ids)
    return dict(
        inputs=dict(input_ids=[torch.tensor(ids)],
                    pixel_values=[torch.randn(
                        1, 3, 32, 32,
                        generator=torch.Generator().manual_seed(0))],
                    labels=[torch.tensor(labels)]),
        data_samples=[DataSample(metainfo=dict(sample_id='masked'))])


@pytest.mark.parametrize('wrapper_type', [GuardedOptimWrapper, OptimWrapper])
def test_an_all_masked_llava_batch_gives_a_finite_loss_and_no_update(
        tokenizer, wrapper_type):
    model = tiny_llava(tokenizer).train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    wrapper = wrapper_type(optimizer=torch.optim.AdamW(
        trainable, lr=1e-3, weight_decay=0.1))
    model.train_step(llava_batch(masked=False), wrapper)
    before = weights(model)

    log_vars = model.train_step(llava_batch(masked=True), wrapper)

    assert log_vars['loss'].item() == 0
    moved = not same(weights(model), before)
    assert moved == (wrapper_type is OptimWrapper)


# bf16 AMP on the CPU (mmengine's AmpOptimWrapper asserts a GPU).
# ---------------------------------------------------------------------------
def test_cpu_amp_autocasts_to_bf16_as_torch_does(tokenizer):
    """The wrapper's context is torch's CPU bf16 autocast: the same loss,
    bit for bit, as the model run under ``torch.autocast`` directly, and
    within bf16 rounding of the fp32 loss."""
    model = tiny_llava(tokenizer).train()
    wrapper = GuardedAmpOptimWrapper(optimizer=adamw(model))
    batch = model.data_preprocessor(llava_batch(masked=False), True)
    with wrapper.optim_context(model):
        amp_loss = model(**batch, mode='loss')['loss']
    with torch.autocast('cpu', dtype=torch.bfloat16):
        reference = model(**batch, mode='loss')['loss']
    fp32_loss = model(**batch, mode='loss')['loss']
    assert torch.equal(amp_loss, reference)
    assert amp_loss.item() != fp32_loss.item()
    assert amp_loss.item() == pytest.approx(fp32_loss.item(), rel=1e-2)


def test_cpu_amp_steps_like_the_plain_wrapper_without_scaling():
    """bf16 needs no loss scaling: with the scaler off, the update is the
    plain wrapper's, and the checkpointed state holds no scale."""
    amp, plain = linear(), linear()
    amp_wrapper = GuardedAmpOptimWrapper(optimizer=adamw(amp),
                                         dtype='bfloat16')
    plain_wrapper = OptimWrapper(optimizer=adamw(plain))
    for seed in range(2):
        amp_wrapper.update_params(regression_loss(amp, seed))
        plain_wrapper.update_params(regression_loss(plain, seed))
    assert same(weights(amp), weights(plain))
    assert amp_wrapper.state_dict()['loss_scaler'] == {}


def test_cpu_amp_skips_a_nan_step():
    """No scaler sees overflows on the CPU, so the guard skips them."""
    model = linear()
    wrapper = GuardedAmpOptimWrapper(optimizer=adamw(model))
    before = weights(model)
    wrapper.update_params(regression_loss(model) * float('nan'))
    assert same(weights(model), before)
    assert MessageHub.get_current_instance().get_info(SKIPPED_STEPS_KEY) == 1


def test_cpu_amp_refuses_float16():
    with pytest.raises(ValueError, match='bfloat16 only.*--amp-dtype'):
        GuardedAmpOptimWrapper(optimizer=adamw(linear()), dtype='float16')
