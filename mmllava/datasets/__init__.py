"""Datasets, transforms and samplers; importing this module registers them."""
from mmllava.datasets import transforms  # noqa: F401
from mmllava.datasets.caption_dataset import CaptionDataset
from mmllava.datasets.coco_caption import COCOKarpathyCaptionDataset
from mmllava.datasets.json_benchmarks import (MMVetDataset, QBenchDataset,
                                              SEEDBenchDataset)
from mmllava.datasets.llava_dataset import LLaVADataset
from mmllava.datasets.mmbench import MMBenchDataset
from mmllava.datasets.question_dataset import LLaVAQuestionDataset
from mmllava.datasets.samplers import LengthGroupedSampler

__all__ = ['LLaVADataset', 'LengthGroupedSampler', 'LLaVAQuestionDataset',
           'COCOKarpathyCaptionDataset', 'CaptionDataset', 'MMBenchDataset',
           'MMVetDataset', 'QBenchDataset', 'SEEDBenchDataset']
