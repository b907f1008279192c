"""The data path, json record to collated batch: mmllava's dataset,
pipeline and data preprocessor against the official per-sample
preprocessing, on the same records in the same order."""
import time
from typing import Sequence

import torch
from mmengine.dataset import pseudo_collate

from mmllava.analysis.benchmark.official_preprocess import (
    OfficialStyleDataset, collate)
from mmllava.analysis.benchmark.sizes import Sizes
from mmllava.datasets import LLaVADataset
from mmllava.registry import MODELS


def official_datasets(sizes: Sizes, tokenizer,
                      paths: dict) -> list[OfficialStyleDataset]:
    return [OfficialStyleDataset(paths[key], paths['image_folder'], template,
                                 tokenizer, sizes.image_processor)
            for key, template in (('captions', 'plain'),
                                  ('conversations', 'vicuna_v1'))]


def record_order(datasets: Sequence, count: int) -> list[tuple[int, int]]:
    """``count`` (dataset, index) pairs, cycling through all records."""
    pairs = [(d, i) for d, dataset in enumerate(datasets)
             for i in range(len(dataset))]
    return [pairs[k % len(pairs)] for k in range(count)]


def outputs_agree(ours: Sequence[LLaVADataset],
                  official: Sequence[OfficialStyleDataset]) -> dict:
    """Per record: equal ids, labels and (image records) pixel values, all
    bit for bit."""
    checked = equal = 0
    for dataset, reference in zip(ours, official):
        for index in range(len(dataset)):
            inputs = dataset[index]['inputs']
            expected = reference[index]
            checked += 1
            equal += bool(
                torch.equal(inputs['input_ids'], expected['input_ids'])
                and torch.equal(inputs['labels'], expected['labels'])
                and (not len(inputs['pixel_values']) or torch.equal(
                    inputs['pixel_values'][0], expected['image'])))
    return dict(records=checked, equal=equal)


def benchmark_data_path(sizes: Sizes, ours: Sequence[LLaVADataset],
                        official: Sequence[OfficialStyleDataset],
                        tokenizer) -> dict:
    """Samples per second of each path, interleaved over
    ``sizes.data_rounds``."""
    order = record_order(ours, sizes.data_samples)
    batches = [order[start:start + sizes.batch_size]
               for start in range(0, len(order), sizes.batch_size)]
    preprocessor = MODELS.build(dict(type='LLaVADataPreprocessor'))
    max_length = tokenizer.model_max_length

    def mmllava_path(batch):
        preprocessor(pseudo_collate([ours[d][i] for d, i in batch]))

    def official_path(batch):
        collate([official[d][i] for d, i in batch],
                tokenizer.pad_token_id, max_length)

    seconds = dict(mmllava=0.0, official=0.0)
    for _ in range(sizes.data_rounds):
        for side, path in (('mmllava', mmllava_path),
                           ('official', official_path)):
            start = time.perf_counter()
            for batch in batches:
                path(batch)
            seconds[side] += time.perf_counter() - start
    samples = len(order) * sizes.data_rounds
    return {side: samples / value for side, value in seconds.items()}
