"""A batch as LLaVA's data preprocessor hands it to the model, as one typed
structure that the model's loss, prediction and embedding steps take."""
from dataclasses import dataclass, fields, replace
from typing import Mapping, Optional

import torch


@dataclass
class LLaVAInputs:
    """One batch of LLaVA inputs.

    Args:
        input_ids (Tensor): ``(B, L)`` token ids, ``IMAGE_TOKEN_INDEX``
            where an image goes.
        attention_mask (Tensor): ``(B, L)``, 0 on padding.
        labels (Tensor, optional): ``(B, L)`` targets, ``-100`` where not
            supervised; the loss needs them, generation ignores them.
        pixel_values (Tensor, optional): The batch's images (AnyRes: their
            tiles, base view first), image after image.
        num_images (list[int], optional): Images per sample; None means
            none in any sample.
        image_sizes (Tensor, optional): ``(sum num_images, 2)`` original
            ``(height, width)`` of each image (AnyRes).
        data_samples (list, optional): The samples' ``DataSample`` s, named
            in errors.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: Optional[torch.Tensor] = None
    pixel_values: Optional[torch.Tensor] = None
    num_images: Optional[list] = None
    image_sizes: Optional[torch.Tensor] = None
    data_samples: Optional[list] = None

    def __post_init__(self) -> None:
        if self.num_images is None:
            self.num_images = [0] * len(self.input_ids)

    @classmethod
    def from_batch(cls, batch: Mapping) -> 'LLaVAInputs':
        """The inputs in a data preprocessor's output dict (keys it does
        not hold stay None)."""
        return cls(**{field.name: batch.get(field.name)
                      for field in fields(cls)})

    def without_labels(self) -> 'LLaVAInputs':
        """The same inputs with ``labels`` dropped (for generation)."""
        return replace(self, labels=None)
