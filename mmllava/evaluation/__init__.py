"""Metrics and the answer-file writer; importing this module registers
them (the METRICS registry imports it on a build)."""
from mmllava.evaluation.answer_files import AnswerFileWriter
from mmllava.evaluation.metrics import (COCOCaptionMetric, ExactMatchAccuracy,
                                        MMBenchMetric, MMEMetric, MMVetMetric,
                                        MultipleChoiceAccuracy, POPEMetric,
                                        ScienceQAAccuracy, VQAAccuracy)

__all__ = [
    'AnswerFileWriter', 'COCOCaptionMetric', 'ExactMatchAccuracy',
    'MMBenchMetric', 'MMEMetric', 'MMVetMetric', 'MultipleChoiceAccuracy',
    'POPEMetric', 'ScienceQAAccuracy', 'VQAAccuracy'
]
