"""oneDNN-packed linear weights: torch's ``F.linear`` is the reference."""
import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mmllava.engine.hooks import CPUGenerationHook
from mmllava.models import packed_linears
from mmllava.models.packed_linears import (_PACKED_BY_MODEL, PackedLinears,
                                           is_packable, onednn_available,
                                           packed_cpu_kernels,
                                           packing_is_faster,
                                           release_packed_kernels,
                                           time_both_kernels)

pytestmark = pytest.mark.skipif(
    not onednn_available(), reason='this torch build has no oneDNN')

PACKED_OP = 'mkldnn::_linear_pointwise'


def layers(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(48, 96), nn.GELU(),
                         nn.Linear(96, 160, bias=False)).eval()


def run_ops(fn):
    """``fn()`` and the names of the aten/mkldnn ops it ran."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        result = fn()
    return result, {event.name for event in prof.events()}


@pytest.mark.parametrize('shape', [(1, 48), (8, 48), (2, 5, 48)])
def test_packed_layers_match_torch_linear(shape):
    model = layers()
    inputs = torch.randn(shape)
    expected = model(inputs)
    packed = PackedLinears()
    with torch.no_grad(), packed.applied(model) as count:
        result, ops = run_ops(lambda: model(inputs))
    assert count == 2 and len(packed) == 2
    assert PACKED_OP in ops
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
    # Outside the block the layers are torch's own again.
    assert not any('forward' in vars(m) for m in model)
    _, ops = run_ops(lambda: model(inputs))
    assert PACKED_OP not in ops


def test_non_contiguous_input_matches():
    linear = layers()[0]
    # The LM head sees the last position of a (B, L, C) tensor.
    inputs = torch.randn(3, 7, 48)[:, -1:, :]
    assert not inputs.is_contiguous()
    with torch.no_grad(), PackedLinears().applied(linear):
        result = linear(inputs)
    torch.testing.assert_close(
        result, F.linear(inputs, linear.weight, linear.bias),
        rtol=1e-5, atol=1e-5)


def test_weights_changed_in_place_are_packed_again():
    model = layers()
    inputs = torch.randn(4, 48)
    packed = PackedLinears()

    def packed_and_torch():
        with torch.no_grad():
            with packed.applied(model):
                result = model(inputs)
            return result, model(inputs)

    before, _ = packed_and_torch()
    with torch.no_grad():
        model[0].weight.mul_(-2)  # as an optimizer step would
    after_step = packed_and_torch()
    model.load_state_dict(layers(seed=1).state_dict())
    after_load = packed_and_torch()
    model[2].weight = nn.Parameter(torch.zeros(160, 96))  # replaced
    after_replace = packed_and_torch()
    assert not torch.allclose(before, after_step[0])
    for result, expected in (after_step, after_load, after_replace):
        torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
    assert not after_replace[0].any()


def test_layers_gone_from_the_model_are_dropped():
    first, second = layers(), layers(seed=1)
    packed = PackedLinears()
    with torch.no_grad(), packed.applied(first):
        first(torch.randn(1, 48))
    with torch.no_grad(), packed.applied(second):
        second(torch.randn(1, 48))
    assert len(packed) == 2
    assert all(entry[0]() in list(second) for entry in
               packed._packed.values())


def test_training_uses_torch_kernels_and_gets_gradients():
    model = layers().train()
    inputs = torch.randn(4, 48)
    reference = copy.deepcopy(model)
    reference(inputs).square().sum().backward()
    with PackedLinears().applied(model):
        loss, ops = run_ops(lambda: model(inputs).square().sum())
        loss.backward()
    assert PACKED_OP not in ops
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad)


def test_other_inputs_and_layers_stay_with_torch():
    linear = layers()[0]
    with torch.no_grad(), PackedLinears().applied(linear):
        with pytest.raises(RuntimeError):
            # A bfloat16 input reaches torch's kernel, which refuses the
            # float32 weight, as it would without packing.
            linear(torch.randn(2, 48, dtype=torch.bfloat16))
    assert not is_packable(nn.Linear(4, 4).to(torch.bfloat16))
    assert not is_packable(nn.Linear(0, 4))
    assert not is_packable(nn.Conv1d(4, 4, 1))

    class OwnForward(nn.Linear):
        def forward(self, inputs):
            return super().forward(inputs) * 2

    assert not is_packable(OwnForward(4, 4))
    hooked = nn.Linear(4, 4)
    hooked.forward = lambda inputs: inputs  # accelerate-style hook
    assert not is_packable(hooked)
    assert is_packable(nn.Linear(4, 4))


def test_copies_and_pickles_carry_no_packed_weights():
    model = layers()
    packed = PackedLinears()
    with torch.no_grad(), packed.applied(model):
        model(torch.randn(1, 48))
    assert len(packed) == 2
    assert len(copy.deepcopy(packed)) == 0
    assert len(pickle.loads(pickle.dumps(packed))) == 0


def test_overlapping_blocks_keep_the_layers_packed_until_the_last_leaves():
    # As two threads generating with one model would.
    model = layers()
    packed = PackedLinears()
    with packed.applied(model) as count:
        with packed.applied(model) as inner_count:
            assert inner_count == count == 2
        assert all('forward' in vars(model[i]) for i in (0, 2))
    assert not any('forward' in vars(m) for m in model)


def test_a_failed_packing_leaves_the_model_as_it_was(monkeypatch):
    model = layers()
    packed = PackedLinears()
    packed_weight = packed.packed_weight

    def fail_on_the_second(linear):
        if linear is model[2]:
            raise RuntimeError('no memory for the copy')
        return packed_weight(linear)

    monkeypatch.setattr(packed, 'packed_weight', fail_on_the_second)
    with pytest.raises(RuntimeError, match='no memory'):
        with packed.applied(model):
            pass
    assert not any('forward' in vars(m) for m in model)
    monkeypatch.undo()
    with packed.applied(model) as count:
        assert count == 2


def test_a_model_keeps_its_packed_weights_between_blocks_until_released():
    model = layers()
    inputs = torch.randn(2, 48)
    expected = model(inputs)
    with torch.no_grad(), packed_cpu_kernels(model,
                                             only_if_faster=False) as count:
        result, ops = run_ops(lambda: model(inputs))
    assert count == 2 and PACKED_OP in ops
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6)
    packed = _PACKED_BY_MODEL[model]
    assert len(packed) == 2
    # The next block reuses the copies; outside, torch's kernels.
    with torch.no_grad(), packed_cpu_kernels(model, only_if_faster=False):
        model(inputs)
    assert _PACKED_BY_MODEL[model] is packed and len(packed) == 2
    assert PACKED_OP not in run_ops(lambda: model(inputs))[1]
    release_packed_kernels(model)
    assert model not in _PACKED_BY_MODEL and len(packed) == 0


def test_the_hook_packs_during_validation_and_test_and_releases_after_val(
        monkeypatch):
    # Where packing pays off (the hook packs only there).
    monkeypatch.setattr(packed_linears, 'packing_is_faster',
                        lambda linears: True)
    model = layers()

    class Runner:
        pass

    runner = Runner()
    runner.model = model
    hook = CPUGenerationHook()
    for before, after, kept in (
            (hook.before_val_epoch, hook.after_val_epoch, False),
            (hook.before_test_epoch, hook.after_test_epoch, True)):
        before(runner)
        assert all('forward' in vars(model[i]) for i in (0, 2))
        with torch.no_grad():
            assert PACKED_OP in run_ops(lambda: model(torch.randn(1, 48)))[1]
        after(runner)
        assert not any('forward' in vars(m) for m in model)
        # Training changes the weights after a validation: no copies kept.
        assert (model in _PACKED_BY_MODEL) is kept
    release_packed_kernels(model)


def test_packing_is_measured_once_per_shapes_and_threads(monkeypatch):
    timings = []

    def fake_timing(linears):
        timings.append(sorted(tuple(m.weight.shape) for m in linears))
        return 1.0, 0.5

    monkeypatch.setattr(packed_linears, 'time_both_kernels', fake_timing)
    monkeypatch.setattr(packed_linears, '_FASTER_BY_SHAPES', {})
    model = layers()
    linears = [model[0], model[2]]
    assert packing_is_faster(linears) and packing_is_faster(linears)
    assert timings == [[(96, 48), (160, 96)]]
    # Other shapes are measured anew.
    assert packing_is_faster([nn.Linear(8, 8)])
    assert len(timings) == 2


def test_no_packing_where_it_would_not_pay_off(monkeypatch):
    monkeypatch.setattr(packed_linears, 'time_both_kernels',
                        lambda linears: (1.0, 0.99))
    monkeypatch.setattr(packed_linears, '_FASTER_BY_SHAPES', {})
    model = layers()
    inputs = torch.randn(3, 48)
    with torch.no_grad():
        expected = model(inputs)
        with packed_cpu_kernels(model) as count:
            assert count == 0
            assert not any('forward' in vars(model[i]) for i in (0, 2))
            _, ops = run_ops(lambda: model(inputs))
            assert torch.equal(model(inputs), expected)
        assert PACKED_OP not in ops
        # Asked to pack regardless, it does.
        with packed_cpu_kernels(model, only_if_faster=False) as count:
            assert count == 2
    release_packed_kernels(model)


def test_both_kernels_are_timed_on_the_largest_shapes():
    model = nn.Sequential(*[nn.Linear(16 * (i + 1), 16 * (i + 2))
                            for i in range(5)])
    torch_seconds, packed_seconds = time_both_kernels(list(model),
                                                      calls=2, repeats=1)
    assert torch_seconds > 0 and packed_seconds > 0
