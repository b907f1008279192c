"""The registries of mmllava, children of mmengine's root registries.

Each child carries ``locations`` so that building ``dict(type='LLaVA')`` under
the ``mmllava`` scope imports the module that registers it; configs need no
hand imports.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmllava',
    locations=['mmllava.models'])
TOKENIZERS = Registry(
    'tokenizer', scope='mmllava', locations=['mmllava.models'])
DATASETS = Registry(
    'dataset', parent=MMENGINE_DATASETS, scope='mmllava',
    locations=['mmllava.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMENGINE_TRANSFORMS, scope='mmllava',
    locations=['mmllava.datasets.transforms'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='mmllava',
    locations=['mmllava.datasets'])
LOOPS = Registry(
    'loop', parent=MMENGINE_LOOPS, scope='mmllava',
    locations=['mmllava.engine'])
METRICS = Registry(
    'metric', parent=MMENGINE_METRICS, scope='mmllava',
    locations=['mmllava.evaluation'])
HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmllava',
    locations=['mmllava.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmllava',
    locations=['mmllava.engine'])
