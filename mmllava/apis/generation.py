"""Conversations with images -> the config's ``test_pipeline`` -> one batch
-> the model's generated answers."""
from os import PathLike
from typing import Optional, Sequence, Union

import numpy as np
from mmengine.dataset import Compose
from PIL import Image

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.models.answering import answer_samples
from mmllava.models.cpu_generation import fast_cpu_generation
from mmllava.registry import TRANSFORMS

#: What an image argument may be: a file, a PIL image or a uint8 array.
ImageInput = Union[str, PathLike, Image.Image, np.ndarray]
#: A sample's images: one, a list (or tuple) of several in the order of
#: their ``<image>``, or None for a text-only sample.
SampleImages = Union[ImageInput, Sequence[ImageInput], None]


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


def count_images(images: SampleImages) -> int:
    """How many images a sample has."""
    if images is None:
        return 0
    return len(images) if isinstance(images, (list, tuple)) else 1


def with_placeholders(prompt: str, num_images: int, name: str) -> str:
    """A human turn about ``num_images`` new images: one ``<image>\\n`` per
    image before ``prompt``, or ``prompt`` itself where it places them with
    its own ``<image>``, one per image in the images' order. Without
    images, ``<image>`` is text, as in a text-only record.

    Raises:
        ValueError: ``prompt`` holds ``<image>``, but not one per image;
            the message names it as ``name``.
    """
    found = prompt.count(IMAGE_PLACEHOLDER)
    if not found or not num_images:
        return f'{IMAGE_PLACEHOLDER}\n' * num_images + prompt
    if found != num_images:
        raise ValueError(
            f'{name} holds {found} {IMAGE_PLACEHOLDER} for {num_images} '
            f'image{"" if num_images == 1 else "s"}; write one '
            f'{IMAGE_PLACEHOLDER} per image where it goes, or none to put '
            'the images first.')
    return prompt


def image_fields(image: SampleImages) -> dict:
    """The data-info keys :class:`LoadImage` reads for a sample's image, or
    its list of images (paths only: ``img_path`` as a dataset gives it)."""
    if image is None:
        return dict(img_path=None)
    if isinstance(image, (str, PathLike)):
        return dict(img_path=str(image))
    if isinstance(image, (list, tuple)) and image and all(
            isinstance(item, (str, PathLike)) for item in image):
        return dict(img_path=[str(item) for item in image])
    return dict(img=image)


def generate(model, conversations: Sequence[list[dict]],
             images: Sequence[SampleImages],
             **generation_kwargs) -> list[str]:
    """Answer the last human turn of each conversation, as one batch.

    Args:
        model (LLaVA): Built by :func:`get_model` (it reads ``model.cfg``).
        conversations (Sequence[list[dict]]): LLaVA turns (``{'from':
            'human'|'gpt', 'value': str}``), each ending with a human turn;
            ``<image>`` marks where an image goes.
        images (Sequence): Per conversation, its image, a list of its
            images (one ``<image>`` each, in order) or None.
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
    # On CPU: packed linear weights and the lean decoding loop, where each
    # pays off or applies.
    with fast_cpu_generation(model):
        return answer_samples(model, samples, **generation_kwargs)
