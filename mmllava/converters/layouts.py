"""Which layout a checkpoint is in, and loading it into a built model:
mmllava checkpoints, official LLaVA folders, llava-hf folders and
mmpretrain's LLaVA file."""
import os
import re
from os import PathLike
from pathlib import Path
from typing import Any, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner.checkpoint import load_state_dict

from mmllava.converters import llava_hf, mmpretrain, official
from mmllava.converters.deepspeed_checkpoint import \
    consolidate_deepspeed_checkpoint
from mmllava.utils.files import is_deepspeed_checkpoint, resolve_checkpoint
from mmllava.utils.safe_load import load_torch_file


#: The layouts :func:`load_pretrained` reads, as named in its errors.
LAYOUTS = {
    'mmllava': 'an mmllava checkpoint (.pth), a DeepSpeed checkpoint folder '
               '(mp_rank_00_model_states.pt) or a training work dir (with '
               'last_checkpoint)',
    'official': 'an official LLaVA folder (config.json with mm_projector_type'
                ' or mm_vision_tower, or weights model.mm_projector.*)',
    'llava-hf': 'a llava-hf folder (config.json with model_type "llava", '
                '"llava_next" or "llava_onevision")',
    'mmpretrain': "an mmpretrain LLaVA file (one .pth whose keys are "
                  'model.lang_encoder.*, as its llava-delta2mmpre.py writes)',
}


def detect_layout(path: Union[str, PathLike]) -> str:
    """Which layout ``path`` holds: ``'mmllava'``, ``'official'``,
    ``'llava-hf'`` or ``'mmpretrain'``.

    A file whose keys are ``model.lang_encoder.*`` is mmpretrain's; any
    other file is an mmllava checkpoint (mmengine reads it).

    Raises:
        FileNotFoundError: ``path`` does not exist, or is a folder in no
            layout it knows (the error lists those it looked for).
    """
    path = Path(path)
    if path.is_file():
        return 'mmpretrain' if mmpretrain.is_mmpretrain_file(str(path)) \
            else 'mmllava'
    if path.is_dir():
        if (path / 'last_checkpoint').is_file() or \
                is_deepspeed_checkpoint(str(path)):
            return 'mmllava'
        # Official first: LLaVA v0/v1 configs also say model_type "llava".
        if official.is_official(str(path)):
            return 'official'
        if llava_hf.is_llava_hf(str(path)):
            return 'llava-hf'
    else:
        raise FileNotFoundError(f'Checkpoint not found: {str(path)!r} (give a '
                                'checkpoint file, a training work dir or a '
                                'converted model folder).')
    looked_for = '; '.join(f'{name}: {what}' for name, what in LAYOUTS.items())
    raise FileNotFoundError(f'{str(path)!r} is a folder in no layout mmllava '
                            f'reads. Looked for {looked_for}.')


def read_checkpoint(path: str, map_location: Any = None) -> Any:
    """An mmllava checkpoint as a dict, read safely.

    A training run's work dir stands for its latest checkpoint, so a
    recipe's ``load_from`` can name the previous stage's work dir. A
    DeepSpeed checkpoint folder is consolidated in memory into the weights
    a plain run saves (it cannot be resumed by a plain run: resume it under
    its ``--strategy``). Files go through :func:`load_torch_file`
    (``weights_only`` unless unsafe pickles were allowed).
    """
    path = resolve_checkpoint(os.path.expanduser(path))
    if is_deepspeed_checkpoint(path):
        return consolidate_deepspeed_checkpoint(
            path, lambda line: print_log(line, logger='current'))
    return load_torch_file(path, map_location=map_location)


def load_pretrained(model: torch.nn.Module, path: Union[str, PathLike],
                    vision_tower: Union[str, PathLike, None] = None) -> str:
    """Load trained weights into ``model``, every key strictly.

    The layout is detected (:func:`detect_layout`); official and llava-hf
    folders are read shard by shard and their keys mapped to the model's
    (see :mod:`mmllava.converters`); mmpretrain's LLaVA file is mapped as
    :mod:`mmllava.converters.mmpretrain` says.

    Args:
        model (nn.Module): The built model.
        path (str | PathLike): An mmllava checkpoint (``.pth`` holding a
            ``state_dict``, read with ``torch.load(weights_only=True)``), a
            training work dir (its latest checkpoint), an official LLaVA
            folder, a llava-hf folder or mmpretrain's LLaVA file.
        vision_tower (str | PathLike, optional): For mmpretrain's file only
            (it holds no tower): a transformers CLIP folder or an mmpretrain
            CLIP ViT checkpoint (``backbone.*`` keys). Defaults to the tower
            the config built.

    Returns:
        str: The checkpoint file or folder that was loaded.
    """
    layout = detect_layout(path)
    if vision_tower is not None and layout != 'mmpretrain':
        raise ValueError(f'vision_tower is read with mmpretrain\'s LLaVA '
                         f'file only; {str(path)!r} is {LAYOUTS[layout]}.')
    if layout == 'mmpretrain':
        mmpretrain.load_into_model(
            model, str(path), str(vision_tower) if vision_tower else None)
        return str(path)
    if layout == 'official':
        official.load_into_model(model, str(path))
        return str(path)
    if layout == 'llava-hf':
        llava_hf.load_into_model(model, str(path))
        return str(path)
    checkpoint = resolve_checkpoint(str(path))
    state = read_checkpoint(checkpoint, map_location='cpu')
    state = state.get('state_dict', state)
    # Keys of a model saved wrapped in DDP, as mmengine's loader strips them.
    load_state_dict(model, {re.sub(r'^module\.', '', key): value
                            for key, value in state.items()},
                    strict=True, logger='silent')
    return checkpoint


def runner_checkpoint(cfg: Config, path: Union[str, PathLike],
                      work_dir: Union[str, PathLike],
                      vision_tower: Union[str, PathLike, None] = None) -> str:
    """The checkpoint file an mmengine Runner loads (``load_from``, as in
    ``tools/test.py``) for the weights at ``path``.

    An mmllava checkpoint, DeepSpeed folder or work dir resolves as it is.
    mmpretrain's LLaVA file is converted for the config's model (as
    ``tools/model_converters/mmpretrain_to_mmllava.py`` does) into
    ``WORK_DIR/mmpretrain_converted.pth``. An official or llava-hf folder
    fails, naming the converter that turns it into a config and folders.

    Args:
        cfg (Config): The config the runner builds the model from.
        path (str | PathLike): The weights.
        work_dir (str | PathLike): Where a converted checkpoint is written.
        vision_tower (str | PathLike, optional): With mmpretrain's file: a
            transformers CLIP folder or an mmpretrain CLIP ViT checkpoint;
            defaults to the tower folder the config names.
    """
    layout = detect_layout(path)
    if layout == 'mmllava':
        if vision_tower is not None:
            raise ValueError(f'vision_tower is read with mmpretrain\'s LLaVA '
                             f'file only; {str(path)!r} is {LAYOUTS[layout]}.')
        return resolve_checkpoint(str(path))
    if layout != 'mmpretrain':
        tool = dict(official='official_to_mmllava.py',
                    **{'llava-hf': 'hf_to_mmllava.py'})[layout]
        raise ValueError(
            f'{str(path)!r} is {LAYOUTS[layout]}: a runner loads mmllava '
            'checkpoints and mmpretrain\'s LLaVA file. Convert it with '
            f'tools/model_converters/{tool} and use the llava_config.py it '
            'writes (as a _base_), or load it with get_model(pretrained=).')
    state = mmpretrain.to_mmllava_state(
        str(path), mmpretrain.vocab_size_of(cfg),
                             str(vision_tower) if vision_tower else None,
                             cfg.model.vision_encoder.get('pretrained'))
    out = Path(work_dir, 'mmpretrain_converted.pth')
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix('.pth.tmp')
    torch.save(dict(state_dict=state, meta=dict(source=str(path))), partial)
    partial.replace(out)
    return str(out)
