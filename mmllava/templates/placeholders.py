"""Where a human message's ``<image>`` placeholders stand once rendered:
LLaVA-1.5's rule for a record with one image, LLaVA-NeXT's (the rule of its
interleaved, several-image data) for a record with several."""
from mmllava.constants import IMAGE_PLACEHOLDER


def move_image_to_front(message: str) -> str:
    """Put a message's image placeholder first, as ``<image>\\n``.

    This is the official ``preprocess_multimodal``: every ``<image>`` is
    removed from the message and one is placed at its front.
    """
    if IMAGE_PLACEHOLDER not in message:
        return message
    text = message.replace(IMAGE_PLACEHOLDER, '').strip()
    return (IMAGE_PLACEHOLDER + '\n' + text).strip()


def image_first_once(message: str) -> str:
    """LLaVA-NeXT's ``preprocess_multimodal``: a message with one
    ``<image>``, not at its front, gets it moved there as ``<image>\\n``; a
    message with several keeps them where they stand."""
    if message.count(IMAGE_PLACEHOLDER) != 1 or \
            message.startswith(IMAGE_PLACEHOLDER):
        return message
    return move_image_to_front(message)


def place_images(message: str, num_images: int) -> str:
    """A human message of a record with ``num_images`` images, its
    placeholders where rendering puts them.

    With one image, LLaVA-1.5's rule (:func:`move_image_to_front`: several
    ``<image>`` in a message merge into one, at its front). With several,
    LLaVA-NeXT-Interleave's (:func:`image_first_once`): a message's lone
    ``<image>`` moves to its front, several stay where the text puts them,
    so ``'Compare <image> with <image>.'`` keeps both in place.
    """
    if num_images > 1:
        return image_first_once(message)
    return move_image_to_front(message)
