"""Logits processors for OpenAI's sampling fields that ``generate`` does
not have in OpenAI's sense, and the recorder of ``logprobs``.

With ``inputs_embeds`` (how the model generates) ``input_ids`` in a
processor holds only the generated tokens, so counts here are over the
answer, as OpenAI defines them.
"""
from typing import Optional, Sequence

import torch
from transformers import LogitsProcessor, StoppingCriteria


class PenaltyProcessor(LogitsProcessor):
    """OpenAI's penalties: ``logit[j] -= count[j] * frequency_penalty +
    (count[j] > 0) * presence_penalty``, counts over the answer so far.

    Args:
        frequency_penalty (float): Per occurrence.
        presence_penalty (float): Once per token that occurred.
    """

    def __init__(self, frequency_penalty: float,
                 presence_penalty: float) -> None:
        self.frequency_penalty = frequency_penalty
        self.presence_penalty = presence_penalty

    def __call__(self, input_ids: torch.Tensor,
                 scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] == 0:
            return scores
        # (B, T) ids -> (B, V) counts
        counts = torch.zeros_like(scores).scatter_add_(
            1, input_ids, torch.ones_like(input_ids, dtype=scores.dtype))
        return scores - counts * self.frequency_penalty \
            - (counts > 0).to(scores.dtype) * self.presence_penalty


class MinTokensProcessor(LogitsProcessor):
    """No end of sequence before ``min_tokens`` tokens.

    Args:
        min_tokens (int): The fewest tokens an answer has.
        eos_token_id (int): The token made impossible until then.
    """

    def __init__(self, min_tokens: int, eos_token_id: int) -> None:
        self.min_tokens = min_tokens
        self.eos_token_id = eos_token_id

    def __call__(self, input_ids: torch.Tensor,
                 scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] < self.min_tokens:
            scores = scores.clone()
            scores[:, self.eos_token_id] = -float('inf')
        return scores


def token_entry(tokenizer, token_id: int, logprob: float) -> dict:
    text = tokenizer.decode([token_id])
    return {'token': text, 'logprob': logprob,
            'bytes': list(text.encode('utf-8'))}


class _Taker(StoppingCriteria):
    """Called after each step's tokens are chosen; never stops a row."""

    def __init__(self, recorder: 'LogprobsRecorder') -> None:
        self.recorder = recorder

    def __call__(self, input_ids: torch.Tensor, scores,
                 **kwargs) -> torch.Tensor:
        self.recorder.take(input_ids[:, -1])
        return torch.zeros(len(input_ids), dtype=torch.bool,
                           device=input_ids.device)


class LogprobsRecorder(LogitsProcessor):
    """Record, per row that asks, each generated token's log probability
    and its ``top_logprobs`` likeliest alternatives, in OpenAI's shape.

    As a logits processor it keeps the step's log-softmax; its
    :attr:`taker` (a stopping criterion, run once the tokens are chosen)
    looks the chosen tokens up.

    Args:
        tokenizer: Decodes each token for the record.
        wanted (Sequence[int | None]): Per row, how many alternatives; None
            records nothing for the row.
    """

    def __init__(self, tokenizer, wanted: Sequence[Optional[int]]) -> None:
        self.tokenizer = tokenizer
        self.wanted = list(wanted)
        self.rows: list[list[dict]] = [[] for _ in self.wanted]
        self.pending: Optional[torch.Tensor] = None
        self.taker = _Taker(self)

    def __call__(self, input_ids: torch.Tensor,
                 scores: torch.Tensor) -> torch.Tensor:
        self.pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def take(self, tokens: torch.Tensor) -> None:
        logprobs = self.pending.cpu()
        for index, top in enumerate(self.wanted):
            if top is None:
                continue
            token = int(tokens[index])
            entry = token_entry(self.tokenizer, token,
                                float(logprobs[index, token]))
            values, ids = logprobs[index].topk(top) if top else ((), ())
            entry['top_logprobs'] = [
                token_entry(self.tokenizer, int(token_id), float(value))
                for value, token_id in zip(values, ids)]
            self.rows[index].append(entry)
