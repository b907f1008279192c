"""Per-row streaming and stopping for a batch that generates together.

``generate`` hands a streamer each step's tokens for the whole batch
(``(B,)``); :class:`BatchStreamer` passes each row's token to that row's
:class:`RowStream`, which turns tokens into text pieces with the
:class:`~mmllava.apis.AnswerStreamer` that ``ChatSession`` uses, then cuts
them at the request's own stop strings. :class:`RowStoppingCriteria` ends a
row at its own ``max_tokens``, a stop string or a cancelled request while
the other rows go on.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from mmllava.apis import AnswerStreamer


class StopTextFilter:
    """Pass streamed text on up to the first of ``stops``.

    Text that may be the start of a stop string is held back until the
    next piece shows whether it is.

    Args:
        stops (Sequence[str]): The request's stop strings (may be empty).
        callback (Callable[[str], None]): Receives each piece let through.
    """

    def __init__(self, stops: Sequence[str],
                 callback: Callable[[str], None]) -> None:
        self.stops = list(stops)
        self.callback = callback
        self.text = ''
        self.sent = ''
        self.stopped = False

    def feed(self, piece: str) -> None:
        if self.stopped:
            return
        self.text += piece
        cut = cut_at_stops(self.text, self.stops)
        if cut is not None:
            self.stopped = True
            self._send(cut)
        else:
            self._send(self.text[:len(self.text) - self._held_back()])

    def finish(self) -> str:
        """Send what was held back; return the whole text."""
        if not self.stopped:
            self._send(self.text)
        return self.sent

    def _held_back(self) -> int:
        """Length of the longest end of the text that starts a stop."""
        return max((size for stop in self.stops
                    for size in range(1, min(len(stop), len(self.text)) + 1)
                    if self.text.endswith(stop[:size])), default=0)

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent):
            self.callback(text[len(self.sent):])
            self.sent = text


def cut_at_stops(text: str, stops: Sequence[str]) -> Optional[str]:
    """``text`` before the earliest stop string, or None if none occurs."""
    positions = [text.find(stop) for stop in stops if stop in text]
    return text[:min(positions)] if positions else None


@dataclass
class RowResult:
    """What one row generated.

    Attributes:
        text (str): The answer, cut at the template's and the request's
            stop strings.
        finish_reason (str): ``'stop'`` (EOS or a stop string), ``'length'``
            (``max_tokens`` reached) or ``'cancelled'``.
        completion_tokens (int): Tokens generated for the row.
        logprobs (list[dict], optional): Per token, OpenAI's
            ``logprobs.content`` entry, when the request asked for them.
    """

    text: str
    finish_reason: str
    completion_tokens: int
    logprobs: Optional[list] = None


class RowStream:
    """One request's row of a batch: its tokens, its text and when it ends.

    Args:
        tokenizer: The model's tokenizer.
        template_stop (str): The chat template's stop text.
        stops (Sequence[str]): The request's stop strings.
        max_tokens (int): The most tokens the row may generate.
        on_delta (Callable[[str], None]): Receives each new piece of text.
        is_cancelled (Callable[[], bool]): Whether the client is gone.
    """

    def __init__(self, tokenizer, template_stop: str, stops: Sequence[str],
                 max_tokens: int, on_delta: Callable[[str], None],
                 is_cancelled: Callable[[], bool]) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.is_cancelled = is_cancelled
        # Stop texts that decoding without special tokens can show.
        self.stop_texts = list(stops) + (
            [template_stop] if template_stop != tokenizer.eos_token else [])
        self.filter = StopTextFilter(stops, on_delta)
        self.answer = AnswerStreamer(tokenizer, template_stop,
                                     self.filter.feed)
        #: Tokens the row generated before it ended (None while it runs).
        self.num_tokens: Optional[int] = None
        self.finish_reason = 'length'
        self.steps_seen = 0

    def check_end(self, token_ids: torch.Tensor) -> bool:
        """Whether the row ends after ``token_ids`` (all it generated)."""
        if self.num_tokens is not None:
            return True
        reason = None
        if self.is_cancelled():
            reason = 'cancelled'
        elif len(token_ids) and \
                int(token_ids[-1]) == self.tokenizer.eos_token_id:
            reason = 'stop'
        elif self.stop_texts and any(
                stop in self.tokenizer.decode(token_ids,
                                              skip_special_tokens=True)
                for stop in self.stop_texts):
            reason = 'stop'
        elif len(token_ids) >= self.max_tokens:
            reason = 'length'
        if reason is not None:
            self.num_tokens, self.finish_reason = len(token_ids), reason
        return reason is not None

    def put(self, token: torch.Tensor, step: int) -> None:
        """Take the row's token of decoding step ``step`` (from 1); tokens
        after the row ended (padding) are not its own."""
        if self.num_tokens is not None and step > self.num_tokens:
            return
        self.steps_seen = step
        self.answer.put(token)

    def start(self, prompt: torch.Tensor) -> None:
        """``generate`` first puts the prompt, which the answer skips."""
        self.answer.put(prompt)

    def end(self) -> RowResult:
        self.answer.end()
        return RowResult(text=self.filter.finish(),
                         finish_reason=self.finish_reason,
                         completion_tokens=self.num_tokens
                         if self.num_tokens is not None else self.steps_seen)


class BatchStreamer(BaseStreamer):
    """Dispatch each step's ``(B,)`` tokens to the rows' streams.

    Args:
        rows (Sequence[RowStream]): One per batch row, in order.
        on_end (Callable[[list[RowResult]], None]): Receives the rows'
            results when generation ends.
    """

    def __init__(self, rows: Sequence[RowStream],
                 on_end: Callable[[list[RowResult]], None]) -> None:
        self.rows = list(rows)
        self.on_end = on_end
        self.step = 0

    def put(self, value: torch.Tensor) -> None:
        if self.step == 0:
            for index, row in enumerate(self.rows):
                row.start(value[index:index + 1])
            self.step = 1
            return
        # (B,) -> one token per row
        for index, row in enumerate(self.rows):
            row.put(value[index:index + 1], self.step)
        self.step += 1

    def end(self) -> None:
        self.on_end([row.end() for row in self.rows])


class RowStoppingCriteria(StoppingCriteria):
    """End each row on its own terms (see :meth:`RowStream.check_end`).

    Args:
        rows (Sequence[RowStream]): One per batch row, in order.
    """

    def __init__(self, rows: Sequence[RowStream]) -> None:
        self.rows = list(rows)

    def __call__(self, input_ids: torch.Tensor, scores,
                 **kwargs) -> torch.Tensor:
        # With inputs_embeds, input_ids holds only the generated tokens.
        done = [row.check_end(input_ids[index].cpu())
                for index, row in enumerate(self.rows)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
