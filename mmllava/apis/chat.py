"""Multi-turn chat about an image, or several, with the answer streamed as
it is written."""
from typing import Callable, Union

import torch
from transformers.generation.streamers import BaseStreamer

from mmllava.apis.generation import (ImageInput, SampleImages, generate,
                                     with_placeholders)
from mmllava.templates import cut_at_stop


class AnswerStreamer(BaseStreamer):
    """Hand the answer to ``callback`` piece by piece while it is generated.

    The pieces join to the answer ``LLaVA.generate_answers`` returns (decoded
    without special tokens, cut at the template's stop text, stripped), so
    text that may still change is held back: the unfinished last word (a
    character made of several byte tokens decodes only once complete),
    trailing whitespace, and a possible start of the stop text.

    Args:
        tokenizer: The model's tokenizer.
        stop (str): The template's stop text.
        callback (Callable[[str], None]): Receives each new piece.
    """

    def __init__(self, tokenizer, stop: str,
                 callback: Callable[[str], None]) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.callback = callback
        self.token_ids: list[int] = []
        self.sent = ''
        self.prompt_skipped = False

    def put(self, value: torch.Tensor) -> None:
        # generate() first puts the prompt ids (none with inputs_embeds).
        if not self.prompt_skipped:
            self.prompt_skipped = True
            return
        if value.dim() > 1 and value.shape[0] > 1:
            raise ValueError('AnswerStreamer streams one answer at a time.')
        self.token_ids += value.flatten().tolist()
        text = self._decode()
        if self.stop in text:
            self._send(cut_at_stop(text, self.stop))
            return
        last_space = max(text.rfind(' '), text.rfind('\n'))
        self._send(self._without_stop_start(text[:max(last_space, 0)])
                   .rstrip())

    def end(self) -> None:
        self._send(cut_at_stop(self._decode(), self.stop))

    def _decode(self) -> str:
        return self.tokenizer.decode(
            self.token_ids, skip_special_tokens=True).lstrip()

    def _without_stop_start(self, text: str) -> str:
        for size in range(min(len(self.stop), len(text)), 0, -1):
            if text.endswith(self.stop[:size]):
                return text[:-size]
        return text

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.callback(text[len(self.sent):])
            self.sent = text


class ChatSession:
    """A conversation with a model about an image, several, or none.

    The images go with the first question; every answer joins the history,
    so later questions are answered in its context. An image added later
    (:meth:`add_image`) goes with the next question (LLaVA-NeXT-Interleave's
    multi-turn, several-image chats).

    A question about new images places them with its own ``<image>``, one
    per new image in their order (``'Is <image> brighter than <image>?'``);
    one without ``<image>`` gets one ``<image>\\n`` per new image before it.

    Args:
        model (LLaVA): Built by :func:`get_model`.
        image (str | PathLike | PIL.Image | np.ndarray | list, optional):
            The image to talk about, or a list of images.

    Attributes:
        images (list): The conversation's images, in the order of their
            ``<image>``.
        history (list[dict]): The turns so far in LLaVA's format
            (``{'from': 'human'|'gpt', 'value': str}``).

    Examples:
        >>> session = ChatSession(model, 'data/demo/images/eval_00000.png')
        >>> session.ask('What is in the image?',
        ...             streamer=lambda text: print(text, end=''))
        >>> session.ask('What colour is it?')
        >>> session.add_image('data/demo/images/eval_00001.png')
        >>> session.ask('And in this one?')
    """

    def __init__(self, model, image: SampleImages = None) -> None:
        self.model = model
        self.reset(image)

    def reset(self, image: SampleImages = None) -> None:
        """Start a new conversation, about ``image`` (one, a list, or
        none)."""
        self.images: list = [] if image is None else \
            list(image) if isinstance(image, (list, tuple)) else [image]
        self.history: list[dict] = []
        #: How many of ``images`` the next question brings in.
        self._new_images = len(self.images)

    def add_image(self, image: ImageInput) -> None:
        """Add an image to the conversation; its ``<image>`` goes with the
        next question."""
        self.images.append(image)
        self._new_images += 1

    def ask(self, question: str,
            streamer: Union[Callable[[str], None], BaseStreamer, None] = None,
            **generation_kwargs) -> str:
        """Answer ``question`` in the context of the conversation so far.

        Args:
            question (str): The question.
            streamer (Callable | BaseStreamer, optional): A function given
                each new piece of the answer as it is generated (the pieces
                join to the returned answer), or a transformers streamer
                such as ``TextIteratorStreamer``.
            **generation_kwargs: Override the model's ``generation_cfg``.

        Returns:
            str: The answer, whose ``.cut`` says whether it reached the token
            budget before its end (:class:`~mmllava.models.generated_text.
            GeneratedText`). An empty answer is not kept in the history (an
            empty turn cannot be rendered), and neither is its question,
            whose new images then go with the next question.

        Raises:
            ValueError: The question brings new images and holds
                ``<image>``, but not one per new image.
        """
        if self._new_images:
            question = with_placeholders(question, self._new_images,
                                         'The question')
        turn = {'from': 'human', 'value': question}
        if streamer is not None and not isinstance(streamer, BaseStreamer):
            streamer = AnswerStreamer(self.model.tokenizer,
                                      self.model.template.stop, streamer)
        if streamer is not None:
            generation_kwargs['streamer'] = streamer
        # A cut answer says so through ``.cut``; the caller shows it (a log
        # line would land in the middle of a streamed answer).
        answer, = generate(self.model, [self.history + [turn]],
                           [self.images or None], warn_when_cut=False,
                           **generation_kwargs)
        if answer:
            self.history += [turn, {'from': 'gpt', 'value': answer}]
            self._new_images = 0
        return answer
