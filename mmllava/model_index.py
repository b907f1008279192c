"""The model index: recipe names, their configs and tasks, read from the
metafiles (mmpretrain's model-index layout), and the config of a name, a
file or a Config (:func:`load_config`)."""
import copy
import difflib
import fnmatch
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Optional, Union

import yaml
from mmengine.config import Config

import mmllava

#: The tasks ``inference_model`` knows; a metafile ``Task`` and a config's
#: ``inference.task`` take one of these.
TASKS = ('caption', 'vqa')


@dataclass(frozen=True)
class ModelInfo:
    """One ``Models`` entry of a metafile.

    Args:
        name (str): The name ``get_model`` takes.
        collection (str): Its ``In Collection`` (the paper).
        config (str): Absolute path of its config.
        task (str): One of :data:`TASKS`.
    """

    name: str
    collection: str
    config: str
    task: str


def repo_root() -> Path:
    """The directory holding ``configs/``, found from the installed package.

    The recipes live beside the package in a source checkout (``pip install
    -e .``); a wheel does not ship them.
    """
    root = Path(mmllava.__file__).resolve().parents[1]
    if not (root / 'configs').is_dir():
        raise FileNotFoundError(
            f'No configs/ folder beside the mmllava package (looked in '
            f'{root}); install mmllava from a source checkout with '
            '`pip install -e .` to use the model index.')
    return root


def metafiles() -> list[Path]:
    """Every ``configs/*/metafile.yml``."""
    return sorted(repo_root().glob('configs/*/metafile.yml'))


def read_metafile(path: Path) -> list[ModelInfo]:
    """Read a metafile's ``Models``; configs resolve against the repository
    root (where ``configs/`` lies)."""
    index = yaml.safe_load(path.read_text())
    collections = {item['Name'] for item in index.get('Collections', [])}
    infos = []
    for entry in index['Models']:
        name, task = entry['Name'], entry['Metadata']['Task']
        if entry['In Collection'] not in collections:
            raise ValueError(f'{path}: model {name!r} is in collection '
                             f'{entry["In Collection"]!r}, which the file '
                             f'does not define ({sorted(collections)}).')
        if task not in TASKS:
            raise ValueError(f'{path}: model {name!r} has task {task!r}; '
                             f'known tasks: {TASKS}.')
        infos.append(ModelInfo(
            name=name, collection=entry['In Collection'],
            config=str(repo_root() / entry['Config']), task=task))
    return infos


def load_model_index() -> dict[str, ModelInfo]:
    """All models of all metafiles, by name; a name given twice fails."""
    index: dict[str, ModelInfo] = {}
    for path in metafiles():
        for info in read_metafile(path):
            if info.name in index:
                raise ValueError(f'Model name {info.name!r} is given twice '
                                 '(names must be unique across metafiles).')
            index[info.name] = info
    return index


def list_models(pattern: Optional[str] = None,
                task: Optional[str] = None) -> list[str]:
    """Names of the models in the index.

    Args:
        pattern (str, optional): An ``fnmatch`` pattern, matched as a
            prefix as in mmpretrain (``'llava-1.5'`` finds every
            ``llava-1.5*``).
        task (str, optional): Only models of this task (:data:`TASKS`).

    Returns:
        list[str]: Sorted names.

    Examples:
        >>> list_models('*caption')
        ['llava-1.5-7b_caption', 'llava-7b-v1_caption',
         'llava-tiny_demo_caption']
    """
    if task is not None and task not in TASKS:
        raise ValueError(f'Unknown task {task!r}; known tasks: {TASKS}.')
    names = sorted(name for name, info in load_model_index().items()
                   if task is None or info.task == task)
    if pattern is not None:
        names = fnmatch.filter(names, pattern + '*')
    return names


def find_model(name: str) -> ModelInfo:
    """The index entry called ``name``; an unknown name fails listing the
    closest names."""
    index = load_model_index()
    if name in index:
        return index[name]
    close = difflib.get_close_matches(name, index, n=5, cutoff=0.5)
    hint = f'Did you mean one of {close}?' if close \
        else f'Known models: {sorted(index)}.'
    raise ValueError(f'Unknown model {name!r}. {hint} (list_models() gives '
                     'all names; a config file path works too.)')


def load_config(model: Union[str, PathLike, Config]) -> Config:
    """A copy of ``model`` if it is a Config, else the config of a file
    (``.py``) or of a model-index name."""
    if isinstance(model, Config):
        return copy.deepcopy(model)
    if not isinstance(model, (str, PathLike)):
        raise TypeError('model must be a model name, a config path or a '
                        f'Config, got {type(model).__name__}.')
    path = Path(model)
    if path.suffix != '.py':
        info = find_model(str(model))
        path = Path(info.config)
        if not path.is_file():
            raise FileNotFoundError(
                f'Model {info.name!r}: its config {path} does not exist.')
    elif not path.is_file():
        raise FileNotFoundError(f'Config file not found: {path}')
    return Config.fromfile(str(path))
