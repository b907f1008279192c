"""Benchmark metrics; importing this module registers them."""
from mmllava.evaluation.metrics.coco_caption import COCOCaptionMetric
from mmllava.evaluation.metrics.exact_match import ExactMatchAccuracy
from mmllava.evaluation.metrics.mmbench import MMBenchMetric
from mmllava.evaluation.metrics.mme import MMEMetric
from mmllava.evaluation.metrics.mmvet import MMVetMetric
from mmllava.evaluation.metrics.multiple_choice import MultipleChoiceAccuracy
from mmllava.evaluation.metrics.pope import POPEMetric
from mmllava.evaluation.metrics.scienceqa import ScienceQAAccuracy
from mmllava.evaluation.metrics.vqa_accuracy import VQAAccuracy

__all__ = [
    'COCOCaptionMetric', 'ExactMatchAccuracy', 'MMBenchMetric', 'MMEMetric',
    'MMVetMetric', 'MultipleChoiceAccuracy', 'POPEMetric',
    'ScienceQAAccuracy', 'VQAAccuracy'
]
