"""Stop a run before it loads a checkpoint that does not fit its model."""
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.distributed.fsdp import FullyShardedDataParallel

from mmllava.registry import HOOKS
from mmllava.utils.state_dicts import (PartialLoadError, compare_state_dict,
                                       model_shapes, partial_load_message,
                                       strip_prefixes)

#: The two ways to allow a partial load, named in the error.
ALLOW_PARTIAL_HINT = ('--allow-partial-load on tools/train.py or '
                      'tools/test.py, or '
                      'default_hooks.strict_load.allow_partial=True')


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Refuse a checkpoint (``load_from``, ``--resume``, the checkpoint of
    ``tools/test.py``) whose tensors do not fit the model, before any is
    loaded.

    mmengine's runner loads non-strictly: a checkpoint of another width,
    of a LoRA run, or of another projector trains or tests on random
    weights for what does not fit, and says so only in a log line. This
    hook compares the checkpoint's ``state_dict`` with the model in
    ``after_load_checkpoint`` (which mmengine calls before it applies the
    weights) and raises :class:`~mmllava.utils.state_dicts.PartialLoadError`
    listing the missing, unexpected and mis-shaped keys (counts and the
    first names). A resume into a model of another shape stops here too,
    rather than inside the optimizer's first step.

    DeepSpeed checkpoint folders load through DeepSpeed (its
    ``load_module_strict``), which hands the hook no weights; under FSDP
    the model is sharded and is not compared.

    Args:
        allow_partial (bool): Load what fits anyway and log one warning
            listing the rest. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, allow_partial: bool = False) -> None:
        self.allow_partial = allow_partial

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict = checkpoint.get('state_dict')
        if state_dict is None and checkpoint and all(
                isinstance(value, torch.Tensor)
                for value in checkpoint.values()):
            # A bare state dict, which mmengine loads as well.
            state_dict = checkpoint
        if state_dict is None or isinstance(runner.model,
                                            FullyShardedDataParallel):
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        mismatch = compare_state_dict(model_shapes(model),
                                      strip_prefixes(state_dict))
        if not mismatch:
            return
        source = runner.cfg.get('load_from') or 'The checkpoint'
        message = partial_load_message(source, mismatch, ALLOW_PARTIAL_HINT)
        if not self.allow_partial:
            raise PartialLoadError(message)
        runner.logger.warning(f'Partial load, as allowed: {message}')
