"""Hooks; importing this module registers them."""
from mmllava.engine.hooks.cpu_generation_hook import CPUGenerationHook
from mmllava.engine.hooks.image_gain_hook import ImageGainHook
from mmllava.engine.hooks.non_finite_loss_hook import NonFiniteLossHook
from mmllava.engine.hooks.rng_state_hook import RNGStateHook
from mmllava.engine.hooks.sample_answers_hook import SampleAnswersHook
from mmllava.engine.hooks.strict_load_hook import StrictLoadHook

__all__ = ['CPUGenerationHook', 'ImageGainHook', 'NonFiniteLossHook',
           'RNGStateHook', 'SampleAnswersHook', 'StrictLoadHook']
