"""Read a sample's image from disk."""
from mmcv.transforms import BaseTransform
from PIL import Image

from mmllava.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImage(BaseTransform):
    """Open ``img_path`` as an RGB PIL image (any PIL mode is converted).

    Adds ``images``: a list with the image, or an empty list for a text-only
    sample (``img_path`` None). Errors name the sample and the file.
    """

    def transform(self, results: dict) -> dict:
        path = results.get('img_path')
        if path is None:
            results['images'] = []
            return results
        try:
            with Image.open(path) as image:
                results['images'] = [image.convert('RGB')]
        except (OSError, ValueError) as error:
            raise OSError(f'Sample {results.get("sample_id")!r}: cannot read '
                          f'image {path}: {error}') from error
        return results
