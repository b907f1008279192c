"""The data path, json record to collated batch: mmllava's dataset,
pipeline and data preprocessor against the official per-sample
preprocessing, on the same records in the same order."""
import time
from typing import Iterator, Sequence

import torch
from mmengine.dataset import pseudo_collate

from mmllava.datasets import LLaVADataset
from mmllava.registry import MODELS

from benchmark_parts.official_preprocess import OfficialStyleDataset, collate
from benchmark_parts.sizes import Sizes


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


def paired_outputs(ours: Sequence[LLaVADataset],
                   official: Sequence[OfficialStyleDataset]) -> Iterator:
    """``(inputs, expected, ids_equal)`` of every record: ``ours``' packed
    inputs, the official preprocessing's output and whether their ids and
    labels are equal."""
    for dataset, reference in zip(ours, official):
        for index in range(len(dataset)):
            inputs = dataset[index]['inputs']
            expected = reference[index]
            ids_equal = bool(
                torch.equal(inputs['input_ids'], expected['input_ids'])
                and torch.equal(inputs['labels'], expected['labels']))
            yield inputs, expected, ids_equal


def outputs_agree(ours: Sequence[LLaVADataset],
                  official: Sequence[OfficialStyleDataset]) -> dict:
    """Per record: equal ids, labels and (image records) pixel values, all
    bit for bit."""
    checked = equal = 0
    for inputs, expected, ids_equal in paired_outputs(ours, official):
        checked += 1
        equal += ids_equal and (not len(inputs['pixel_values']) or
                                torch.equal(inputs['pixel_values'][0],
                                            expected['image']))
    return dict(records=checked, equal=equal)


def pixel_levels_apart(ours: Sequence[LLaVADataset],
                       official: Sequence[OfficialStyleDataset],
                       image_std: Sequence[float]) -> dict:
    """How far ``ours`` pixels are from the official ones, in uint8 levels
    (one level is ``1 / (255 * std)`` after normalisation): the largest
    difference and the fraction of values that differ. Ids and labels must
    still be equal (``ids_equal``)."""
    level = torch.tensor([1 / (255 * std) for std in image_std])[:, None,
                                                                   None]
    largest, differing, values, all_ids_equal = 0, 0, 0, True
    for inputs, expected, ids_equal in paired_outputs(ours, official):
        all_ids_equal &= ids_equal
        if not len(inputs['pixel_values']):
            continue
        apart = ((inputs['pixel_values'][0] - expected['image']).abs() /
                 level).round()
        largest = max(largest, int(apart.max()))
        differing += int((apart > 0).sum())
        values += apart.numel()
    return dict(ids_equal=all_ids_equal, max_levels=largest,
                fraction_differing=differing / max(values, 1))


def benchmark_data_path(sizes: Sizes,
                        ours: dict[str, Sequence[LLaVADataset]],
                        official: Sequence[OfficialStyleDataset],
                        tokenizer) -> dict:
    """Samples per second of each of ``ours`` (by name) and of the official
    path (``'official'``), interleaved over ``sizes.data_rounds``, on one
    thread: a dataloader worker's setting."""
    order = record_order(official, sizes.data_samples)
    batches = [order[start:start + sizes.batch_size]
               for start in range(0, len(order), sizes.batch_size)]
    preprocessor = MODELS.build(dict(type='LLaVADataPreprocessor'))
    max_length = tokenizer.model_max_length

    def mmllava_path(datasets):
        return lambda batch: preprocessor(
            pseudo_collate([datasets[d][i] for d, i in batch]))

    def official_path(batch):
        collate([official[d][i] for d, i in batch],
                tokenizer.pad_token_id, max_length)

    paths = {name: mmllava_path(datasets) for name, datasets in ours.items()}
    paths['official'] = official_path
    seconds = dict.fromkeys(paths, 0.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(sizes.data_rounds):
            for side, path in paths.items():
                start = time.perf_counter()
                for batch in batches:
                    path(batch)
                seconds[side] += time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    samples = len(order) * sizes.data_rounds
    return {side: samples / value for side, value in seconds.items()}
