"""Conversations with images -> the config's ``test_pipeline`` -> one batch
-> the model's generated answers."""
from os import PathLike
from typing import Optional, Sequence, Union

import numpy as np
from mmengine.dataset import Compose
from PIL import Image

from mmllava.models.answering import answer_samples
from mmllava.registry import TRANSFORMS

#: What an image argument may be: a file, a PIL image or a uint8 array.
ImageInput = Union[str, PathLike, Image.Image, np.ndarray]


def build_test_pipeline(model, tokenizer=None,
                        special_tokens_in_content: Optional[str] = None
                        ) -> Compose:
    """The transforms of ``model.cfg.test_pipeline``.

    Tokenization uses ``tokenizer`` if given (a copy for another thread: a
    fast tokenizer must not be shared across threads), else the model's own
    tokenizer, instead of loading the config's again.
    ``special_tokens_in_content``, if given, replaces the config's
    :class:`TokenizeConversation` setting (a server keeps its clients'
    special-token strings as text whatever the config says).
    """
    cfg = getattr(model, 'cfg', None)
    if cfg is None or 'test_pipeline' not in cfg:
        raise KeyError('The model needs its config with a `test_pipeline` '
                       '(LoadImage ... PackLLaVAInputs) as `model.cfg`; '
                       'build it with get_model().')
    transforms = []
    for transform in cfg.test_pipeline:
        transform = dict(transform)
        if transform['type'] == 'TokenizeConversation':
            transform['tokenizer'] = tokenizer or model.tokenizer
            if special_tokens_in_content is not None:
                transform['special_tokens_in_content'] = \
                    special_tokens_in_content
        transforms.append(TRANSFORMS.build(transform))
    return Compose(transforms)


def image_fields(image: Optional[ImageInput]) -> dict:
    """The data-info keys :class:`LoadImage` reads for ``image``."""
    if image is None:
        return dict(img_path=None)
    if isinstance(image, (str, PathLike)):
        return dict(img_path=str(image))
    return dict(img=image)


def generate(model, conversations: Sequence[list[dict]],
             images: Sequence[Optional[ImageInput]],
             **generation_kwargs) -> list[str]:
    """Answer the last human turn of each conversation, as one batch.

    Args:
        model (LLaVA): Built by :func:`get_model` (it reads ``model.cfg``).
        conversations (Sequence[list[dict]]): LLaVA turns (``{'from':
            'human'|'gpt', 'value': str}``), each ending with a human turn;
            ``<image>`` marks where an image goes.
        images (Sequence): One image (or None) per conversation.
        **generation_kwargs: Passed to ``model.generate_answers``.

    Returns:
        list[str]: One answer per conversation.
    """
    pipeline = build_test_pipeline(model)
    samples = [
        pipeline(dict(sample_id=index, conversations=list(turns),
                      **image_fields(image)))
        for index, (turns, image) in enumerate(zip(conversations, images))
    ]
    return answer_samples(model, samples, **generation_kwargs)
