"""Training loops and hooks; importing this module registers them."""
from mmllava.engine.atomic_file_backend import AtomicLocalBackend
from mmllava.engine.checkpoint_hook import AtomicCheckpointHook
from mmllava.engine.hooks import (NonFiniteLossHook, RNGStateHook,
                                  SampleAnswersHook)
from mmllava.engine.loops import ResumableEpochBasedTrainLoop
from mmllava.engine.resumable_test_loop import ResumableTestLoop

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend', 'NonFiniteLossHook',
           'RNGStateHook', 'ResumableEpochBasedTrainLoop',
           'SampleAnswersHook']
