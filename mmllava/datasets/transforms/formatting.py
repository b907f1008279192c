"""Pack a sample into model inputs and a data sample."""
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from mmllava.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackLLaVAInputs(BaseTransform):
    """Gather ``input_ids``, ``labels`` and ``pixel_values`` as tensors under
    ``inputs``, and the sample's identity under ``data_samples``.

    AnyRes samples (:class:`AnyResImage`) give ``pixel_values`` as one
    tensor of tiles per image: they are concatenated, image after image, and
    ``image_sizes`` becomes a ``(num_images, 2)`` tensor.

    Args:
        meta_keys (tuple[str]): Keys copied into the data sample's metainfo
            when present.
    """

    def __init__(self,
                 meta_keys: tuple[str, ...] = ('sample_id', 'img_path',
                                               'gt_answer')) -> None:
        self.meta_keys = meta_keys

    def transform(self, results: dict) -> dict:
        pixel_values = results.get('pixel_values', torch.empty(0))
        if isinstance(pixel_values, list):
            pixel_values = torch.cat(pixel_values) if pixel_values \
                else torch.empty(0)
        inputs = dict(
            input_ids=torch.tensor(results['input_ids'], dtype=torch.long),
            pixel_values=pixel_values)
        if 'image_sizes' in results:
            inputs['image_sizes'] = torch.tensor(
                results['image_sizes'], dtype=torch.long).reshape(-1, 2)
        if 'labels' in results:
            inputs['labels'] = torch.tensor(results['labels'],
                                            dtype=torch.long)
        data_sample = DataSample(metainfo={
            key: results[key] for key in self.meta_keys if key in results})
        return dict(inputs=inputs, data_samples=data_sample)
