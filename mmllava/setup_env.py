"""The one set-up call of a process that runs mmllava.

Importing this module imports all of mmllava (seconds: mmengine's runner,
transformers); tools import it once their arguments are parsed, so that
``--help`` answers at once.
"""
import mmllava.datasets  # noqa: F401
import mmllava.evaluation  # noqa: F401
import mmllava.models  # noqa: F401
from mmllava.compat import apply_fixes
from mmllava.engine import register_checkpoint_loader
from mmllava.utils.safe_load import allow_checkpoint_types


def register_all_modules() -> None:
    """Register every mmllava module and put mmllava's fixes in place, as
    OpenMMLab's ``register_all_modules`` does.

    Tools call it once before they build anything, as do ``get_model`` and
    the tests; importing mmllava itself changes nothing. Importing this
    module registers the models, datasets, transforms, hooks, loops and
    metrics (a config can then name any of them); the call

    - applies the version fixes of :mod:`mmllava.compat`, warning about any
      written for another version than the installed one;
    - makes mmllava's safe loader mmengine's loader for local checkpoints
      (:mod:`mmllava.engine.checkpoint_loader`);
    - allow-lists the types mmengine checkpoints hold for
      ``torch.load(weights_only=True)``.

    Calling it again does nothing new.
    """
    apply_fixes()
    register_checkpoint_loader()
    allow_checkpoint_types()
