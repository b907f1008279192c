"""Fixes for the pinned stack, in one place.

Each fix replaces a function or method of a library (mmengine, torch) that
misbehaves at the version mmllava pins, and names that version.
:func:`apply_fixes` applies them once (``register_all_modules`` calls it);
importing mmllava patches nothing. A fix whose library is installed at
another version is still applied, with a warning naming the fix and both
versions: check whether it is still needed and still right.
"""
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Callable, Optional

from mmengine.logging import print_log

from mmllava.compat import mmengine_fixes, strategies


@dataclass(frozen=True)
class Fix:
    """One fix.

    Args:
        apply (Callable): Makes the replacement.
        package (str): The distribution it fixes.
        written_for (str): The version of ``package`` it was written for.
    """

    apply: Callable[[], None]
    package: str
    written_for: str

    @property
    def name(self) -> str:
        return self.apply.__name__


FIXES = (
    Fix(mmengine_fixes.pickle_history_buffers_without_methods, 'mmengine',
        '0.10.7'),
    Fix(mmengine_fixes.skip_set_device_without_cuda, 'mmengine', '0.10.7'),
    Fix(strategies.supply_removed_onebit_module, 'deepspeed', '0.19.8'),
    Fix(strategies.call_deepspeed_checkpoint_hooks, 'mmengine', '0.10.7'),
    Fix(strategies.build_zero3_models_partitioned, 'mmengine', '0.10.7'),
    Fix(strategies.load_fsdp_optimizer_states, 'mmengine', '0.10.7'),
    Fix(strategies.clip_fsdp_gradients_as_a_whole, 'mmengine', '0.10.7'),
)

_applied: set[str] = set()


def installed_version(package: str) -> Optional[str]:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def version_warnings(fixes=FIXES) -> list[str]:
    """One line for each fix written for another version of its package
    than the installed one (a package not installed, such as the optional
    DeepSpeed, needs no fix)."""
    return [f"mmllava's fix {fix.name} was written for {fix.package} "
            f'{fix.written_for}, and {fix.package} '
            f'{installed_version(fix.package)} is installed: check that it '
            'is still needed and still right.'
            for fix in fixes
            if installed_version(fix.package) not in (fix.written_for,
                                                      None)]


def apply_fixes() -> list[str]:
    """Apply every fix not yet applied in this process.

    Returns:
        list[str]: The version warnings given (also logged).
    """
    pending = [fix for fix in FIXES if fix.name not in _applied]
    warnings = version_warnings(pending)
    for message in warnings:
        print_log(message, logger='current', level=logging.WARNING)
    for fix in pending:
        fix.apply()
        _applied.add(fix.name)
    return warnings
