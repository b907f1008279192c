"""Save the random number generators' states in each checkpoint and restore
them on resume, so that a resumed run draws what the uninterrupted one
would have drawn (dropout masks, random transforms in the main process)."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook

from mmllava.registry import HOOKS


def get_rng_state() -> dict:
    """The states of python's ``random``, numpy's global generator, torch's
    CPU generator and, when present, every CUDA device's generator, in
    types that ``torch.load(weights_only=True)`` reads."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = dict(
        python=random.getstate(),
        # A tensor, not the uint32 array: no numpy globals in the pickle.
        numpy=dict(name=name, keys=torch.from_numpy(keys.astype(np.int64)),
                   position=int(position), has_gauss=int(has_gauss),
                   cached_gaussian=float(cached_gaussian)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore a :func:`get_rng_state` result.

    Raises:
        ValueError: If the state holds CUDA generators and this machine has
            another number of CUDA devices (or none).
    """
    random.setstate(state['python'])
    numpy_state = state['numpy']
    np.random.set_state((numpy_state['name'],
                         numpy_state['keys'].cpu().numpy().astype(np.uint32),
                         numpy_state['position'], numpy_state['has_gauss'],
                         numpy_state['cached_gaussian']))
    # The runner may load checkpoints onto the GPU; generators take a CPU
    # byte tensor.
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state:
        devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if devices != len(state['cuda']):
            raise ValueError(
                f'The checkpoint holds the RNG states of {len(state["cuda"])}'
                f' CUDA devices, this machine has {devices}: resume on as '
                'many devices, or resume without RNGStateHook.')
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Keep the random streams of a resumed run those of an uninterrupted run.

    Saves :func:`get_rng_state` under ``checkpoint['rng_state']``. On resume
    the state is restored where the uninterrupted run stood when it saved:
    just before the next batch trains. Mid-epoch, that is
    ``before_train_iter`` of the first trained iteration: the batches the
    loop skips, and the dataloader's creation (which draws a base seed from
    torch's generator), come before it. When the checkpoint closed an epoch,
    it is ``before_train_epoch`` of the next epoch, since the uninterrupted
    run created that epoch's dataloader iterator after saving too.

    Exact on CPU with deterministic algorithms, provided nothing between a
    save and the next iteration draws random numbers in the main process
    (LLaVA's transforms draw none; with ``num_workers > 0`` they run in
    workers, which mmengine seeds per worker, and the skipped batches are
    loaded there as before). Validation during training could draw some, so
    the generators are put back after each validation run: training draws
    the same whether or not, and how often, it validates.

    In a distributed run the main process's states are saved and every rank
    restores them, which is exact when ranks share a seed (mmengine's
    default, ``randomness.diff_rank_seed=False``).
    """

    priority = 'HIGHEST'

    def __init__(self) -> None:
        self._to_restore: Optional[dict] = None
        self._before_val: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'rng_state' not in checkpoint:
            runner.logger.warning(
                'The checkpoint has no RNG states (saved without '
                'RNGStateHook): the resumed run draws other random numbers '
                'than an uninterrupted one would.')
            return
        self._to_restore = checkpoint['rng_state']

    def before_train_epoch(self, runner) -> None:
        # An epoch that starts at its first batch: a checkpoint that closed
        # the previous one (the loop skips whole epochs before this).
        if (self._to_restore is not None and runner.iter
                == runner.epoch * len(runner.train_dataloader)):
            self._restore(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        if self._to_restore is not None:
            self._restore(runner)

    def before_val(self, runner) -> None:
        self._before_val = get_rng_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_rng_state(self._before_val)
            self._before_val = None

    def _restore(self, runner) -> None:
        set_rng_state(self._to_restore)
        self._to_restore = None
        runner.logger.info(
            f'Restored the RNG states saved at iteration {runner.iter}.')
