"""Training loops; importing this module registers them."""
from mmllava.engine.loops import ResumableEpochBasedTrainLoop

__all__ = ['ResumableEpochBasedTrainLoop']
