"""``mmllava/converters/shards.py``: the shard writer keeps every shard
within ``max_shard_size`` unless one tensor alone is larger."""
import json

import torch
from safetensors.torch import load_file

from mmllava.converters.shards import ShardWriter

KB = 1000


def shard_sizes(folder) -> dict[str, int]:
    """Bytes of tensor data per shard file, from the shards themselves."""
    index = json.loads((folder / 'model.safetensors.index.json').read_text())
    return {name: sum(t.numel() * t.element_size()
                      for t in load_file(folder / name).values())
            for name in sorted(set(index['weight_map'].values()))}


def test_no_shard_passes_the_limit(tmp_path):
    writer = ShardWriter(str(tmp_path), max_shard_size='100KB')
    # 40 KB tensors: the third would take a shard to 120 KB.
    tensors = {f't{i}': torch.full((10 * KB, ), float(i)) for i in range(7)}
    for key, tensor in tensors.items():
        writer.add(key, tensor)
    writer.close()
    sizes = shard_sizes(tmp_path)
    assert list(sizes.values()) == [80 * KB, 80 * KB, 80 * KB, 40 * KB]
    loaded = {}
    for name in sizes:
        loaded.update(load_file(tmp_path / name))
    assert loaded.keys() == tensors.keys()
    assert all(torch.equal(loaded[key], value)
               for key, value in tensors.items())


def test_a_tensor_larger_than_the_limit_gets_a_shard_of_its_own(tmp_path):
    writer = ShardWriter(str(tmp_path), max_shard_size='100KB')
    writer.add('small', torch.zeros(10 * KB))
    writer.add('large', torch.zeros(50 * KB))
    writer.add('after', torch.zeros(10 * KB))
    writer.close()
    assert list(shard_sizes(tmp_path).values()) == [40 * KB, 200 * KB,
                                                     40 * KB]
