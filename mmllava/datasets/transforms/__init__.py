"""Transforms of the data path; importing this module registers them."""
from mmllava.datasets.transforms.anyres import AnyResImage
from mmllava.datasets.transforms.formatting import PackLLaVAInputs
from mmllava.datasets.transforms.image import (BlankImage, PadToSquare,
                                               ProcessImage, blind_pipeline)
from mmllava.datasets.transforms.loading import LoadImage
from mmllava.datasets.transforms.tokenize import TokenizeConversation

__all__ = ['LoadImage', 'BlankImage', 'PadToSquare', 'ProcessImage',
           'AnyResImage', 'TokenizeConversation', 'PackLLaVAInputs',
           'blind_pipeline']
