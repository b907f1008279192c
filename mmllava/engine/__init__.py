"""Training loops and hooks; importing this module registers them."""
from mmllava.engine.hooks import NonFiniteLossHook, SampleAnswersHook
from mmllava.engine.loops import ResumableEpochBasedTrainLoop

__all__ = ['NonFiniteLossHook', 'ResumableEpochBasedTrainLoop',
           'SampleAnswersHook']
