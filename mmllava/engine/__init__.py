"""Training and test loops, hooks, optimizer wrappers, the atomic checkpoint
backend and the safe checkpoint loader; importing this module registers
them in mmllava's registries (the loader: :func:`register_checkpoint_loader`).
"""
from mmllava.engine.atomic_file_backend import AtomicLocalBackend
from mmllava.engine.checkpoint_hook import AtomicCheckpointHook
from mmllava.engine.checkpoint_loader import register_checkpoint_loader
from mmllava.engine.hooks import (ImageGainHook, NonFiniteLossHook,
                                  RNGStateHook, SampleAnswersHook,
                                  StrictLoadHook)
from mmllava.engine.loops import ResumableEpochBasedTrainLoop
from mmllava.engine.optim_wrappers import (GuardedAmpOptimWrapper,
                                           GuardedOptimWrapper)
from mmllava.engine.resumable_test_loop import ResumableTestLoop
from mmllava.engine.runners import LLaVAFlexibleRunner, LLaVARunner

__all__ = ['AtomicCheckpointHook', 'AtomicLocalBackend',
           'GuardedAmpOptimWrapper', 'GuardedOptimWrapper', 'ImageGainHook',
           'LLaVAFlexibleRunner', 'LLaVARunner',
           'NonFiniteLossHook', 'RNGStateHook', 'ResumableEpochBasedTrainLoop',
           'ResumableTestLoop', 'SampleAnswersHook', 'StrictLoadHook',
           'register_checkpoint_loader']
