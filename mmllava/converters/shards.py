"""Sharded checkpoints on disk: read one shard at a time, write one shard at a
time, so a conversion holds about one shard in memory, not the whole model.

Reads safetensors and torch ``.bin`` files, single or sharded with an index
(``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``);
writes sharded safetensors with ``model.safetensors.index.json``.
"""
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mmllava.utils.safe_load import load_torch_file

SAFE_INDEX = 'model.safetensors.index.json'
BIN_INDEX = 'pytorch_model.bin.index.json'
SINGLE_FILES = ('model.safetensors', 'pytorch_model.bin')
#: Default largest output shard.
DEFAULT_SHARD_SIZE = '2GB'

Log = Callable[[str], None]


def parse_size(size: Union[int, str]) -> int:
    """``'400MB'`` -> bytes (decimal units, as transformers uses them)."""
    if isinstance(size, int):
        return size
    match = re.fullmatch(r'\s*(\d+(?:\.\d+)?)\s*([KMGT]?B)\s*', size.upper())
    if not match:
        raise ValueError(f'Cannot read the shard size {size!r}; write e.g. '
                         "'400MB' or '2GB'.")
    unit = {'B': 1, 'KB': 10**3, 'MB': 10**6, 'GB': 10**9,
            'TB': 10**12}[match.group(2)]
    return int(float(match.group(1)) * unit)


def checkpoint_files(folder: str) -> list[str]:
    """The weight files of a checkpoint folder, in index order.

    Raises:
        FileNotFoundError: Naming the folder and the files looked for.
    """
    root = Path(folder)
    for index in (SAFE_INDEX, BIN_INDEX):
        if (root / index).is_file():
            weight_map = read_index(str(root / index))
            files = list(dict.fromkeys(weight_map.values()))
            missing = [name for name in files if not (root / name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f'{root / index} names shards that are missing: '
                    f'{missing}')
            return [str(root / name) for name in files]
    for name in SINGLE_FILES:
        if (root / name).is_file():
            return [str(root / name)]
    raise FileNotFoundError(
        f'No weights in {folder}: looked for {SAFE_INDEX}, {BIN_INDEX}, '
        f'{" and ".join(SINGLE_FILES)}.')


def read_index(path: str) -> dict[str, str]:
    """The ``weight_map`` of an index file (key -> shard file name)."""
    try:
        weight_map = json.loads(Path(path).read_text())['weight_map']
    except (json.JSONDecodeError, KeyError) as error:
        raise ValueError(f'{path} is not a checkpoint index (a json with a '
                         f'"weight_map"): {error}') from error
    return weight_map


def load_file_tensors(path: str) -> dict[str, torch.Tensor]:
    """All tensors of one weight file (safetensors or torch pickle)."""
    if path.endswith('.safetensors'):
        tensors = {}
        with safe_open(path, framework='pt') as handle:
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
        return tensors
    state = load_torch_file(path, mmap=True)
    if isinstance(state, dict):
        state = state.get('state_dict', state)
    if not isinstance(state, dict):
        raise ValueError(f'{path} holds a {type(state).__name__}, not a '
                         'state dict.')
    return state


def file_keys(path: str) -> list[str]:
    """Tensor names in one weight file without loading a safetensors file."""
    if path.endswith('.safetensors'):
        with safe_open(path, framework='pt') as handle:
            return list(handle.keys())
    return list(load_file_tensors(path))


def iter_shards(folder: str) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
    """Yield ``(file, tensors)`` for each weight file of a folder, one at a
    time (the previous shard is freed once the caller drops it)."""
    for path in checkpoint_files(folder):
        yield path, load_file_tensors(path)


class LazyCheckpoint:
    """Tensors of a checkpoint folder read by name, one file open at a time.

    Used where the order of one checkpoint drives the reads of another
    (delta weights): a safetensors tensor is read alone; a ``.bin`` shard is
    loaded whole (memory-mapped) and kept until another shard is needed.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.files = checkpoint_files(folder)
        self.key_to_file = {}
        for path in self.files:
            for key in file_keys(path):
                self.key_to_file[key] = path
        self._cached: tuple[Optional[str], dict] = (None, {})

    def __contains__(self, key: str) -> bool:
        return key in self.key_to_file

    def keys(self):
        return self.key_to_file.keys()

    def __getitem__(self, key: str) -> torch.Tensor:
        path = self.key_to_file[key]
        if path.endswith('.safetensors'):
            with safe_open(path, framework='pt') as handle:
                return handle.get_tensor(key)
        if self._cached[0] != path:
            self._cached = (None, {})
            self._cached = (path, load_file_tensors(path))
        return self._cached[1][key]


class ShardWriter:
    """Write tensors as sharded safetensors with an index.

    Tensors are buffered until :meth:`flush` (or until the next tensor would
    take the buffer past ``max_shard_size``) and written as one shard, so
    memory holds one shard and no shard is larger than the limit unless one
    tensor alone is.
    Shards are renamed ``model-0000i-of-0000n.safetensors`` on :meth:`close`.

    Args:
        folder (str): Output folder (created).
        max_shard_size (int | str): The largest shard (a larger tensor gets
            a shard of its own).
        log (Callable, optional): Gets a progress line per shard written.
    """

    def __init__(self, folder: str,
                 max_shard_size: Union[int, str] = DEFAULT_SHARD_SIZE,
                 log: Optional[Log] = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_shard_size = parse_size(max_shard_size)
        self.log = log
        self.buffer: dict[str, torch.Tensor] = {}
        self.buffer_size = 0
        self.shards: list[tuple[str, list[str]]] = []
        self.seen: set[str] = set()
        self.total_size = 0
        self.closed = False

    def add(self, key: str, tensor: torch.Tensor) -> None:
        if key in self.seen:
            raise KeyError(f'{key!r} written twice to {self.folder}')
        self.seen.add(key)
        # safetensors refuses views that share storage (tied weights).
        tensor = tensor.detach().contiguous()
        if tensor.untyped_storage().nbytes() != \
                tensor.numel() * tensor.element_size():
            tensor = tensor.clone()
        size = tensor.numel() * tensor.element_size()
        # A shard passes the limit only when one tensor alone does.
        if self.buffer and self.buffer_size + size > self.max_shard_size:
            self.flush()
        self.buffer[key] = tensor
        self.buffer_size += size
        self.total_size += size

    def flush(self) -> None:
        """Write the buffered tensors as one shard."""
        if not self.buffer:
            return
        name = f'shard-{len(self.shards):05d}.safetensors.tmp'
        save_file(self.buffer, str(self.folder / name),
                  metadata={'format': 'pt'})
        self.shards.append((name, list(self.buffer)))
        if self.log:
            self.log(f'  wrote {self.folder.name}/ shard {len(self.shards)} '
                     f'({len(self.buffer)} tensors, '
                     f'{self.buffer_size / 1e6:.1f} MB)')
        self.buffer, self.buffer_size = {}, 0

    def close(self) -> dict:
        """Flush, name the shards and write the index; returns the index."""
        self.flush()
        if not self.shards:
            raise ValueError(f'No tensors were written to {self.folder}')
        count = len(self.shards)
        weight_map = {}
        for number, (temp_name, keys) in enumerate(self.shards, 1):
            name = f'model-{number:05d}-of-{count:05d}.safetensors'
            os.replace(self.folder / temp_name, self.folder / name)
            weight_map.update({key: name for key in keys})
        index = dict(metadata=dict(total_size=self.total_size),
                     weight_map=dict(sorted(weight_map.items())))
        (self.folder / SAFE_INDEX).write_text(json.dumps(index, indent=2))
        self.closed = True
        return index


def copy_files(source: str, target: str, names) -> list[str]:
    """Copy the files among ``names`` that ``source`` holds; returns them."""
    copied = []
    for name in names:
        if (Path(source) / name).is_file():
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(source) / name, Path(target) / name)
            copied.append(name)
    return copied


#: Tokenizer files as transformers and sentencepiece write them.
TOKENIZER_FILES = ('tokenizer.model', 'tokenizer.json',
                   'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json',
                   'chat_template.jinja', 'chat_template.json')


def is_weight_file(name: str) -> bool:
    return name.endswith(('.safetensors', '.bin', '.pt', '.pth')) or \
        name in (SAFE_INDEX, BIN_INDEX)


def copy_non_weight_files(source: str, target: str) -> list[str]:
    """Copy config, tokenizer and other small files (not weights)."""
    names = [path.name for path in Path(source).iterdir()
             if path.is_file() and not is_weight_file(path.name)]
    return copy_files(source, target, names)
