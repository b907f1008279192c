"""Hooks; importing this module registers them."""
from mmllava.engine.hooks.sample_answers_hook import SampleAnswersHook

__all__ = ['SampleAnswersHook']
