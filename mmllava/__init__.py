"""mmllava: LLaVA (visual instruction tuning) on mmengine."""
from mmllava.utils import compat  # noqa: F401  (applies version fixes first)

__version__ = '0.1.0'
