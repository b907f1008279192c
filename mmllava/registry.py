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
from mmengine.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import Registry
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
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
RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, scope='mmllava',
    locations=['mmllava.engine'])

# Children that mmllava adds nothing to: the runner builds optimizers,
# schedulers and visualizers under the mmllava scope, and without a child
# mmengine warns once per registry that it fell back to its own.
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS,
                      scope='mmllava')
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='mmllava')
PARAM_SCHEDULERS = Registry('parameter scheduler',
                            parent=MMENGINE_PARAM_SCHEDULERS, scope='mmllava')
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS,
                       scope='mmllava')
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS,
                       scope='mmllava')
