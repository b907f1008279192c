"""DeepSpeed ZeRO checkpoint folders as mmllava checkpoints.

A run under ``--strategy deepspeed_*`` saves each checkpoint as a folder
(``iter_N.pth/``) of per-rank shards: model states (the module's layout,
the frozen weights and mmengine's state: meta, message hub, RNG states),
``mp_rank_00_model_states.pt`` under ZeRO-1/2 and one
``zero_pp_rank_R_mp_rank_00_model_states.pt`` per rank under ZeRO-3, and
one ``*_optim_states.pt`` per rank, holding that rank's part of the fp32
master weights. DeepSpeed's ``zero_to_fp32``
gathers the fp32 weights; the result is saved as the checkpoint a plain
Runner writes (``state_dict`` and ``meta``), which ``tools/test.py``,
``get_model`` and the other converters read.
"""
import os.path as osp
from glob import glob
from typing import Callable

import torch

from mmllava.utils.files import (DEEPSPEED_MODEL_STATES_FILES,
                                 deepspeed_model_states_file)
from mmllava.utils.safe_load import load_torch_file

def consolidate_deepspeed_checkpoint(
        folder: str, log: Callable[[str], None] = lambda line: None) -> dict:
    """The fp32 weights of a ZeRO-1/2/3 checkpoint folder, as an mmllava
    checkpoint ``dict(state_dict=..., meta=...)``.

    Every file of the folder is first opened with the safe unpickler
    (:func:`load_torch_file`, memory-mapped): DeepSpeed's own reader
    unpickles fully, so a file that would need it is refused (or, with the
    unsafe-pickle opt-in, trusted) before DeepSpeed reads it.

    Args:
        folder (str): The checkpoint folder (e.g. ``WORK_DIR/iter_1000.pth``).
        log (callable): Receives a progress line per step.

    Raises:
        FileNotFoundError: If ``folder`` is not a DeepSpeed checkpoint folder.
    """
    states_file = deepspeed_model_states_file(folder)
    if states_file is None:
        raise FileNotFoundError(
            f'{folder} is not a DeepSpeed checkpoint folder (it has none of '
            f'{", ".join(DEEPSPEED_MODEL_STATES_FILES)})')
    # Imported here: only this path needs DeepSpeed installed.
    from deepspeed.runtime.fp16.loss_scaler import (DynamicLossScaler,
                                                    LossScaler)
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address
    from deepspeed.utils.zero_to_fp32 import \
        get_fp32_state_dict_from_zero_checkpoint

    files = sorted(glob(osp.join(folder, '*.pt')))
    # DeepSpeed's plain state objects (a loss scale, the ZeRO stage, index
    # records): attributes only, nothing runs when they are unpickled.
    with torch.serialization.safe_globals(
            [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]):
        for path in files:
            checked = load_torch_file(path, mmap=True)
            # Rank 0's model states (the run's meta) are kept from here.
            if osp.samefile(path, states_file):
                model_states = checked
    log(f'Checked {len(files)} files of {folder}')
    state_dict = get_fp32_state_dict_from_zero_checkpoint(
        osp.dirname(osp.abspath(folder)), tag=osp.basename(folder))
    # Contiguous copies: zero_to_fp32 returns views into flat buffers.
    state_dict = {key: value.clone() if isinstance(value, torch.Tensor)
                  else value for key, value in state_dict.items()}
    log(f'Gathered {len(state_dict)} tensors of '
        f'{model_states["dp_world_size"]} ranks')
    return dict(state_dict=state_dict, meta=model_states.get('meta', {}))


def consolidate_deepspeed_checkpoint_file(
        folder: str, out: str,
        log: Callable[[str], None] = lambda line: None) -> None:
    """Write :func:`consolidate_deepspeed_checkpoint`'s result to ``out``."""
    checkpoint = consolidate_deepspeed_checkpoint(folder, log)
    torch.save(checkpoint, out)
    log(f'Saved {out}')
