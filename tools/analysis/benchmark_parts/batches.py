"""Training samples, the order of an epoch, and one batch in each model's
input format."""
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.datasets import LLaVADataset
from mmllava.datasets.samplers import LengthGroupedSampler
from mmllava.models.data_preprocessor import PAD_TOKEN_ID
from mmllava.models.packing import plan_rows

from benchmark_parts.sizes import HF_IMAGE_TOKEN_ID, Sizes


def train_pipeline(sizes: Sizes, tokenizer, template: str,
                   resize_backend: str = 'pil') -> list[dict]:
    """LLaVA-1.5's stage-2 pipeline (pad to square, CLIP processor)."""
    return [
        dict(type='LoadImage'),
        dict(type='ProcessImage', image_processor=sizes.image_processor,
             resize_backend=resize_backend,
             pad_to_square=sizes.image_processor['image_mean']),
        dict(type='TokenizeConversation', tokenizer=tokenizer,
             template=template),
        dict(type='PackLLaVAInputs'),
    ]


def build_datasets(sizes: Sizes, tokenizer, paths: dict,
                   resize_backend: str = 'pil') -> list[LLaVADataset]:
    """Captions with ``plain``, conversations with ``vicuna_v1``."""
    return [LLaVADataset(paths[key], paths['image_folder'],
                         train_pipeline(sizes, tokenizer, template,
                                        resize_backend))
            for key, template in (('captions', 'plain'),
                                  ('conversations', 'vicuna_v1'))]


@dataclass
class Sample:
    """One tokenized, processed training sample (mmllava's form)."""

    sample_id: str
    input_ids: torch.Tensor
    labels: torch.Tensor
    pixel_values: torch.Tensor
    modality_length: int

    @property
    def num_images(self) -> int:
        return int((self.input_ids == IMAGE_TOKEN_INDEX).sum())

    def length(self, num_image_tokens: int) -> int:
        """Positions in the LLM input, each image expanded."""
        return len(self.input_ids) + self.num_images * (num_image_tokens - 1)

    @property
    def supervised(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum())

    def to_dict(self) -> dict:
        return dict(sample_id=self.sample_id, input_ids=self.input_ids,
                    labels=self.labels, pixel_values=self.pixel_values,
                    modality_length=torch.tensor(self.modality_length))

    @classmethod
    def from_dict(cls, values: dict) -> 'Sample':
        return cls(**dict(values,
                          modality_length=int(values['modality_length'])))


def load_samples(datasets: Sequence[LLaVADataset]) -> list[Sample]:
    """Every sample of the datasets through mmllava's pipeline, once."""
    samples = []
    for dataset in datasets:
        for index in range(len(dataset)):
            packed = dataset[index]
            inputs = packed['inputs']
            samples.append(Sample(
                sample_id=str(packed['data_samples'].sample_id),
                input_ids=inputs['input_ids'], labels=inputs['labels'],
                pixel_values=inputs['pixel_values'],
                modality_length=int(dataset.modality_lengths[index])))
    return samples


class _Lengths:
    """What :class:`LengthGroupedSampler` reads from a dataset."""

    def __init__(self, modality_lengths: Sequence[int]) -> None:
        self.modality_lengths = np.asarray(modality_lengths)

    def __len__(self) -> int:
        return len(self.modality_lengths)


def epoch_batches(samples: Sequence[Sample], batch_size: int, batching: str,
                  seed: int, epoch: int) -> list[list[int]]:
    """Sample indices of each step of an epoch.

    ``'random'``: a seeded shuffle. ``'grouped'``: the official modality
    length grouping (:class:`LengthGroupedSampler`), its pool the whole
    epoch, so batches are as even in length as it makes them.
    """
    if batching == 'random':
        order = torch.randperm(len(samples), generator=torch.Generator()
                               .manual_seed(seed + epoch)).tolist()
    elif batching == 'grouped':
        sampler = LengthGroupedSampler(
            _Lengths([s.modality_length for s in samples]), batch_size,
            mega_batch_mult=len(samples) // batch_size, seed=seed)
        sampler.set_epoch(epoch)
        order = list(sampler)
    else:
        raise ValueError(f"batching must be 'random' or 'grouped', got "
                         f'{batching!r}')
    return [order[start:start + batch_size]
            for start in range(0, len(order), batch_size)]


def mmllava_batch(model, samples: Sequence[Sample]) -> dict:
    """Collated as mmllava's data loader does, through the model's data
    preprocessor."""
    data = pseudo_collate([dict(
        inputs=dict(input_ids=s.input_ids, labels=s.labels,
                    pixel_values=s.pixel_values),
        data_samples=None) for s in samples])
    data['data_samples'] = None
    return model.data_preprocessor(data)


def expand_image_tokens(sample: Sample, num_image_tokens: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers' Llava form: each image as ``num_image_tokens`` image
    tokens, labelled IGNORE_INDEX."""
    is_image = sample.input_ids == IMAGE_TOKEN_INDEX
    repeats = torch.where(is_image, num_image_tokens, 1)
    input_ids = sample.input_ids.masked_fill(is_image, HF_IMAGE_TOKEN_ID)
    return (input_ids.repeat_interleave(repeats),
            sample.labels.repeat_interleave(repeats))


def baseline_batch(samples: Sequence[Sample], num_image_tokens: int,
                   device: str, padding_side: str = 'right') -> dict:
    """Padded to the longest sample, as transformers' collators do."""
    expanded = [expand_image_tokens(s, num_image_tokens) for s in samples]
    width = max(len(ids) for ids, _ in expanded)
    input_ids = torch.full((len(samples), width), PAD_TOKEN_ID)
    labels = torch.full((len(samples), width), IGNORE_INDEX)
    attention_mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, (ids, sample_labels) in enumerate(expanded):
        span = slice(0, len(ids)) if padding_side == 'right' \
            else slice(width - len(ids), width)
        input_ids[row, span] = ids
        labels[row, span] = sample_labels
        attention_mask[row, span] = 1
    images = [s.pixel_values for s in samples if s.num_images]
    return dict(input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                labels=labels.to(device),
                pixel_values=torch.cat(images).to(device) if images else None)


def token_counts(samples: Sequence[Sample], num_image_tokens: int,
                 packing_max_length: Optional[int] = None) -> dict[str, int]:
    """Samples, real (unpadded) positions, positions the LLM runs (a
    right-padded batch, or the rows mmllava's packing makes of it) and
    supervised tokens of one batch."""
    lengths = [s.length(num_image_tokens) for s in samples]
    if packing_max_length is None:
        padded = len(lengths) * max(lengths)
    else:
        rows = plan_rows(lengths, packing_max_length)
        padded = len(rows) * max(sum(lengths[i] for i in row)
                                 for row in rows)
    return dict(samples=len(lengths), real=sum(lengths), padded=padded,
                supervised=sum(s.supervised for s in samples))
