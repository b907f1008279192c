"""Batch a list of samples: pad ids and labels, build the attention mask,
stack images."""
from typing import Optional

import torch
from mmengine.model import BaseDataPreprocessor

from mmllava.constants import IGNORE_INDEX
from mmllava.registry import MODELS

#: Id written into padding positions; the attention mask hides them and the
#: model never embeds them as text, so any valid id serves.
PAD_TOKEN_ID = 0


def pad_sequences(sequences: list[torch.Tensor], value: int) -> torch.Tensor:
    """Right-pad 1-D tensors to one ``(B, L_max)`` tensor."""
    return torch.nn.utils.rnn.pad_sequence(
        sequences, batch_first=True, padding_value=value)


@MODELS.register_module()
class LLaVADataPreprocessor(BaseDataPreprocessor):
    """Turn collated samples into model inputs.

    Input (mmengine's ``pseudo_collate`` of :class:`PackLLaVAInputs`):
    ``inputs`` holds lists of per-sample ``input_ids``, ``labels`` (optional)
    and ``pixel_values`` (each ``(num_images, 3, H, W)``, possibly empty;
    with AnyRes every image's tiles, and ``image_sizes`` ``(num_images,
    2)``).

    Output: ``input_ids`` and ``attention_mask`` ``(B, L)`` right-padded,
    ``labels`` ``(B, L)`` or None, ``pixel_values`` ``(sum num_images, 3, H,
    W)`` (AnyRes: every tile of the batch) or None, ``num_images`` per
    sample, ``data_samples``; with AnyRes also ``image_sizes`` ``(sum
    num_images, 2)``, each image's original ``(height, width)``.

    Args:
        pixel_dtype (str, optional): Cast images to this dtype (e.g.
            ``'bfloat16'``); by default they stay float32 and the encoder
            casts them to its own dtype.
    """

    def __init__(self, pixel_dtype: Optional[str] = None) -> None:
        super().__init__()
        self.pixel_dtype = getattr(torch, pixel_dtype) if pixel_dtype else None

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        input_ids = inputs['input_ids']
        lengths = torch.tensor([len(ids) for ids in input_ids])
        attention_mask = (torch.arange(int(lengths.max()))[None]
                          < lengths[:, None]).long()
        labels = inputs.get('labels')
        images = inputs['pixel_values']
        image_sizes = inputs.get('image_sizes')
        # AnyRes samples hold several tiles per image: count their sizes.
        num_images = [len(sample_images) for sample_images in
                      (images if image_sizes is None else image_sizes)]
        pixel_values = torch.cat([x for x in images if len(x)]) \
            if any(len(x) for x in images) else None
        if pixel_values is not None and self.pixel_dtype is not None:
            pixel_values = pixel_values.to(self.pixel_dtype)
        batch = dict(
            input_ids=pad_sequences(input_ids, PAD_TOKEN_ID),
            attention_mask=attention_mask,
            labels=pad_sequences(labels, IGNORE_INDEX)
            if labels is not None else None,
            pixel_values=pixel_values,
            num_images=num_images,
            data_samples=data.get('data_samples'))
        if image_sizes is not None:
            batch['image_sizes'] = torch.cat(
                [sizes.reshape(-1, 2) for sizes in image_sizes])
        return self.cast_data(batch)
