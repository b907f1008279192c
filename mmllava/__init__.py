"""mmllava: LLaVA (visual instruction tuning) on mmengine."""
from mmllava.utils import compat  # noqa: F401  (applies version fixes first)
# Local checkpoints load with weights_only=True (mmengine's loader included).
from mmllava.utils import safe_load  # noqa: F401

__version__ = '0.1.0'
