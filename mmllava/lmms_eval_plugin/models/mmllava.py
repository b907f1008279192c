"""The mmllava model as an lmms-eval ``lmms`` model (imports lmms-eval)."""
from lmms_eval.api.model import lmms

from mmllava.lmms_eval_plugin.adapter import LMMSAdapter


class MMLLaVA(LMMSAdapter, lmms):
    """``--model mmllava --model_args pretrained=...,config=...``; see
    :class:`~mmllava.lmms_eval_plugin.adapter.LMMSAdapter` for the
    arguments."""

    def __init__(self, pretrained: str = None, config: str = None,
                 device: str = None, batch_size: int = 1,
                 max_batch_size: int = None) -> None:
        # max_batch_size: lmms-eval passes it to every model; unused here.
        lmms.__init__(self)
        LMMSAdapter.__init__(self, pretrained=pretrained, config=config,
                             device=device, batch_size=batch_size)
