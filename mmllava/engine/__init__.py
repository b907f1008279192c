"""Training loops and hooks; importing this module registers them."""
from mmllava.engine.hooks import SampleAnswersHook
from mmllava.engine.loops import ResumableEpochBasedTrainLoop

__all__ = ['ResumableEpochBasedTrainLoop', 'SampleAnswersHook']
