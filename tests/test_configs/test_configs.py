"""Every recipe config parses, and every ``type`` it names is registered:
a typo in a benchmark config fails here, not after a 7B model has loaded."""
from pathlib import Path

import pytest
from mmengine import registry as mmengine_registry
from mmengine.config import Config

from mmllava.models.projectors import build_projector
from mmllava.registry import (DATA_SAMPLERS, DATASETS, HOOKS, LOOPS,
                              METRICS, MODELS, OPTIM_WRAPPERS, TOKENIZERS,
                              TRANSFORMS)

CONFIGS = sorted(
    Path(__file__).resolve().parents[2].glob('configs/llava/*.py'))


def types_in(value, found):
    """Every ``type`` value under ``value``, with where it was."""
    if isinstance(value, dict):
        if isinstance(value.get('type'), str):
            found.append(value['type'])
        for item in value.values():
            types_in(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            types_in(item, found)
    return found


REGISTRIES = (MODELS, TOKENIZERS, DATASETS, TRANSFORMS, DATA_SAMPLERS,
              METRICS, HOOKS, LOOPS, mmengine_registry.OPTIMIZERS,
              OPTIM_WRAPPERS,
              mmengine_registry.PARAM_SCHEDULERS,
              mmengine_registry.VISBACKENDS, mmengine_registry.VISUALIZERS,
              mmengine_registry.FUNCTIONS)


def registered(name: str) -> bool:
    return any(registry.get(name) is not None for registry in REGISTRIES)


def test_there_are_recipes():
    assert len(CONFIGS) >= 24


@pytest.mark.parametrize('path', CONFIGS, ids=lambda path: path.stem)
def test_config_types_are_registered(path):
    cfg = Config.fromfile(str(path))
    assert 'model' in cfg
    # Projector names ('mlp2x_gelu') are parsed, not registered.
    build_projector(cfg.model.projector, 8, 8)
    config = cfg.to_dict()
    config['model'].pop('projector')
    names = types_in(config, [])
    unknown = sorted({name for name in names if not registered(name)})
    assert not unknown, f'{path.name}: unregistered types {unknown}'


@pytest.mark.parametrize(
    'path', [path for path in CONFIGS if 'test_dataloader' in
             Config.fromfile(str(path))], ids=lambda path: path.stem)
def test_test_configs_are_complete(path):
    cfg = Config.fromfile(str(path))
    for key in ('test_dataloader', 'test_evaluator', 'test_cfg',
                'test_pipeline', 'inference'):
        assert key in cfg, f'{path.name} has no {key}'
    assert cfg.inference.task in ('caption', 'vqa')
    assert cfg.test_dataloader.dataset.pipeline == cfg.test_pipeline
    assert cfg.test_dataloader.sampler.shuffle is False
