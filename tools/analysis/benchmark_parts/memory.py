"""Peak training memory of one setting, measured in a fresh process.

In one process the settings' memory cannot be told apart (and an allocator
keeps what it once took), so each setting runs here alone: build the model,
reset the peak, then two steps of the epoch's heaviest batch (the second
step holds the AdamW state and the activations at once). CPU: peak RSS
(``VmHWM``, reset through ``/proc/self/clear_refs``); GPU: ``torch.cuda.
max_memory_allocated``.

    PYTHONPATH=tools/analysis python -m benchmark_parts.memory WORK_DIR SETTING
"""
import argparse
import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from benchmark_parts.batches import Sample, epoch_batches, token_counts
from benchmark_parts.models import load_weights
from benchmark_parts.sizes import Sizes
from benchmark_parts.training import Setting, build_run, train_step

SETUP_FILE, WEIGHTS_FILE, SAMPLES_FILE = ('setup.json', 'weights.safetensors',
                                          'samples.pt')


def write_inputs(work_dir: str, sizes: Sizes, tokenizer_dir: str, seed: int,
                 settings: list[Setting], device: str,
                 samples: list[Sample]) -> None:
    """What a measuring process reads (the weights are written apart)."""
    Path(work_dir, SETUP_FILE).write_text(json.dumps(dict(
        sizes=sizes.to_dict(), tokenizer_dir=tokenizer_dir, seed=seed,
        device=device, settings=[vars(s) for s in settings])))
    torch.save([s.to_dict() for s in samples], Path(work_dir, SAMPLES_FILE))


def reset_peak(device: str) -> None:
    gc.collect()
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        # '5' resets the peak resident set size (Linux >= 4.0).
        Path('/proc/self/clear_refs').write_text('5')
    except OSError as error:
        raise RuntimeError('Peak RSS needs a writable /proc/self/clear_refs '
                           f'(Linux): {error}') from error


def read_peak(device: str) -> int:
    """Bytes."""
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated()
    status = Path('/proc/self/status').read_text()
    return int(re.search(r'VmHWM:\s+(\d+) kB', status).group(1)) * 1024


def heaviest_batch(samples: list[Sample], sizes: Sizes, setting: Setting,
                   seed: int) -> list[Sample]:
    """The batch of epoch 0 with the most padded positions."""
    batches = [[samples[i] for i in indices] for indices in epoch_batches(
        samples, sizes.batch_size, setting.batching, seed, epoch=0)]
    return max(batches, key=lambda batch: token_counts(
        batch, sizes.num_image_tokens,
        setting.packing_max_length)['padded'])


def measure(work_dir: str, name: str) -> int:
    setup = json.loads(Path(work_dir, SETUP_FILE).read_text())
    sizes = Sizes.from_dict(setup['sizes'])
    setting = next(Setting(**s) for s in setup['settings']
                   if s['name'] == name)
    device = setup['device']
    samples = [Sample.from_dict(s) for s in torch.load(
        Path(work_dir, SAMPLES_FILE), weights_only=True)]
    batch = heaviest_batch(samples, sizes, setting, setup['seed'])
    weights = load_weights(str(Path(work_dir, WEIGHTS_FILE)))
    run = build_run(setting, sizes, setup['tokenizer_dir'], weights, device)
    del weights
    reset_peak(device)
    for _ in range(2):
        train_step(run, batch, sizes, device)
    return read_peak(device)


def peak_memories(work_dir: str, names: list[str]) -> dict[str, int]:
    """Run :func:`measure` for each setting in its own fresh process, all at
    once (a peak does not depend on how fast a process runs)."""
    # This package lives beside its tool, not in an installed one: the
    # process finds it through the folder above it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parents[1]),
        os.environ.get('PYTHONPATH')])))
    processes = {name: subprocess.Popen(
        [sys.executable, '-m', 'benchmark_parts.memory', work_dir, name],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in names}
    peaks = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f'Measuring the memory of {name!r} failed:\n'
                               f'{stderr[-3000:]}')
        peaks[name] = json.loads(stdout.strip().splitlines()[-1])[
            'peak_bytes']
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('setting')
    args = parser.parse_args()
    print(json.dumps(dict(peak_bytes=measure(args.work_dir, args.setting))))


if __name__ == '__main__':
    main()
