"""Benchmark metrics; importing this module registers them."""
from mmllava.evaluation.metrics.coco_caption import COCOCaptionMetric
from mmllava.evaluation.metrics.exact_match import ExactMatchAccuracy
from mmllava.evaluation.metrics.mme import MMEMetric
from mmllava.evaluation.metrics.pope import POPEMetric
from mmllava.evaluation.metrics.scienceqa import ScienceQAAccuracy
from mmllava.evaluation.metrics.vqa_accuracy import VQAAccuracy

__all__ = [
    'COCOCaptionMetric', 'ExactMatchAccuracy', 'MMEMetric', 'POPEMetric',
    'ScienceQAAccuracy', 'VQAAccuracy'
]
