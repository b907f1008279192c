"""``mmllava/converters/delta.py``: LLaVA v0/v1 delta weights on random
tensors, with the embedding-row rule, shard by shard."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmllava.converters.delta import apply_delta, combine, make_delta
from mmllava.converters.shards import SAFE_INDEX, iter_shards

BASE_ROWS, TARGET_ROWS, WIDTH = 10, 13, 8


def random_tensors(seed, rows, dtype):
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=generator).to(dtype)

    return {
        'model.embed_tokens.weight': randn(rows, WIDTH),
        'model.layers.0.self_attn.q_proj.weight': randn(WIDTH, WIDTH),
        'model.layers.0.mlp.up_proj.weight': randn(16, WIDTH),
        'model.norm.weight': randn(WIDTH),
        'lm_head.weight': randn(rows, WIDTH),
    }


def write_sharded(folder, tensors, num_shards):
    """Sharded safetensors with an index, keys spread over the shards."""
    folder.mkdir(parents=True)
    keys = sorted(tensors)
    weight_map = {}
    for number in range(num_shards):
        name = f'model-{number + 1:05d}-of-{num_shards:05d}.safetensors'
        part = keys[number::num_shards]
        save_file({key: tensors[key] for key in part}, str(folder / name))
        weight_map.update({key: name for key in part})
    (folder / SAFE_INDEX).write_text(json.dumps(dict(weight_map=weight_map)))
    (folder / 'config.json').write_text('{"model_type": "llava"}')
    (folder / 'tokenizer_config.json').write_text('{}')
    return str(folder)


def read_all(folder):
    return {key: value for _, tensors in iter_shards(folder)
            for key, value in tensors.items()}


@pytest.fixture(params=[torch.float16])
def checkpoints(tmp_path, request):
    dtype = request.param
    base = random_tensors(0, BASE_ROWS, dtype)
    target = random_tensors(1, TARGET_ROWS, dtype)
    # Only the target has the projector.
    target['model.mm_projector.weight'] = torch.randn(WIDTH, 4).to(dtype)
    return (base, target, write_sharded(tmp_path / 'base', base, 2),
            write_sharded(tmp_path / 'target', target, 3))


@pytest.mark.parametrize('checkpoints', [torch.float16, torch.bfloat16,
                                         torch.float32], indirect=True)
def test_round_trip_is_exact(checkpoints, tmp_path):
    base, target, base_dir, target_dir = checkpoints
    make_delta(base_dir, target_dir, str(tmp_path / 'delta'),
               dtype=torch.float64)
    apply_delta(base_dir, str(tmp_path / 'delta'), str(tmp_path / 'merged'))
    merged = read_all(str(tmp_path / 'merged'))
    assert merged.keys() == target.keys()
    for key, value in target.items():
        assert merged[key].dtype == value.dtype
        assert torch.equal(merged[key], value), key


def test_embedding_rows_rule(checkpoints, tmp_path):
    base, target, base_dir, target_dir = checkpoints
    make_delta(base_dir, target_dir, str(tmp_path / 'delta'))
    delta = read_all(str(tmp_path / 'delta'))
    for key in ('model.embed_tokens.weight', 'lm_head.weight'):
        assert delta[key].shape == (TARGET_ROWS, WIDTH)
        expected = target[key].float()
        expected[:BASE_ROWS] -= base[key].float()
        assert torch.equal(delta[key], expected.half())
    # The projector (only in the target) passes unchanged.
    assert torch.equal(delta['model.mm_projector.weight'],
                       target['model.mm_projector.weight'])
    # Applying adds the base into the first rows only.
    apply_delta(base_dir, str(tmp_path / 'delta'), str(tmp_path / 'merged'))
    merged = read_all(str(tmp_path / 'merged'))
    embed = 'model.embed_tokens.weight'
    assert torch.equal(merged[embed][BASE_ROWS:], delta[embed][BASE_ROWS:])
    expected = (delta[embed][:BASE_ROWS].float()
                + base[embed].float()).half()
    assert torch.equal(merged[embed][:BASE_ROWS], expected)
    # A delta in the checkpoint's dtype round-trips to within one unit in
    # the last place (float16 rounding of the difference).
    for key, value in target.items():
        torch.testing.assert_close(merged[key], value, atol=2e-3, rtol=1e-3)


def test_output_is_sharded_with_an_index(checkpoints, tmp_path):
    _, target, base_dir, target_dir = checkpoints
    make_delta(base_dir, target_dir, str(tmp_path / 'delta'))
    index = json.loads((tmp_path / 'delta' / SAFE_INDEX).read_text())
    # One output shard per input shard.
    files = sorted(set(index['weight_map'].values()))
    assert len(files) == 3
    keys = [key for name in files
            for key in load_file(str(tmp_path / 'delta' / name))]
    assert sorted(keys) == sorted(index['weight_map']) == sorted(target)
    assert (tmp_path / 'delta' / 'config.json').is_file()
    assert (tmp_path / 'delta' / 'tokenizer_config.json').is_file()


def test_mismatched_shapes_fail_naming_the_tensor():
    with pytest.raises(ValueError, match='model.norm.weight.*only'):
        combine('model.norm.weight', torch.zeros(9), torch.zeros(8), 1)
    with pytest.raises(ValueError, match='lm_head.weight'):
        combine('lm_head.weight', torch.zeros(4, 8), torch.zeros(6, 8), 1)


def test_base_tensors_missing_from_the_delta_fail(checkpoints, tmp_path):
    base, _, base_dir, _ = checkpoints
    partial = dict(base)
    partial.pop('model.norm.weight')
    delta_dir = write_sharded(tmp_path / 'partial', partial, 1)
    with pytest.raises(KeyError, match='model.norm.weight'):
        apply_delta(base_dir, delta_dir, str(tmp_path / 'out'))
