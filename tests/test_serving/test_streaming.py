"""``mmllava/serving/streaming.py``: stop strings cut streamed text the way
they cut the whole text; each row ends on its own terms."""
import random

import pytest
import torch

from mmllava.serving.streaming import RowStream, StopTextFilter

TEXTS = ['The cat sat on the mat.\nThe dog sat too.',
         'no stop here at all',
         'END at the start', 'ends with EN', 'a ## b ### c']
STOPS = [['\n'], ['END'], ['###', '##'], ['mat', 'dog'], []]


def whole_text_cut(text: str, stops: list[str]) -> str:
    """Reference: the text before the earliest occurrence of any stop."""
    end = len(text)
    for stop in stops:
        if stop in text:
            end = min(end, text.index(stop))
    return text[:end]


@pytest.mark.parametrize('text', TEXTS)
@pytest.mark.parametrize('stops', STOPS)
def test_pieces_join_to_the_text_cut_at_the_first_stop(text, stops):
    rng = random.Random(0)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), 4))
        pieces = [text[start:end]
                  for start, end in zip([0] + cuts, cuts + [len(text)])]
        sent = []
        text_filter = StopTextFilter(stops, sent.append)
        for piece in pieces:
            text_filter.feed(piece)
            # Nothing is sent that the final text does not hold: not even
            # the first letters of a stop.
            assert whole_text_cut(text, stops).startswith(''.join(sent))
        assert text_filter.finish() == ''.join(sent)
        assert ''.join(sent) == whole_text_cut(text, stops)
        assert text_filter.stopped == any(stop in text for stop in stops)


def run_row(tokenizer, token_ids: list[int], pad_id: int = 0, **options):
    """Drive a RowStream as ``generate`` does: each step the stopping
    criteria see all tokens so far, then the streamer gets the new one;
    ended rows get padding until the batch ends."""
    pieces = []
    settings = dict(template_stop='</s>', stops=[], max_tokens=100,
                    on_delta=pieces.append, is_cancelled=lambda: False)
    settings.update(options)
    row = RowStream(tokenizer, **settings)
    row.start(torch.zeros(1, 0, dtype=torch.long))
    generated = []
    for step in range(1, len(token_ids) + 3):
        ended = bool(generated) and row.num_tokens is not None
        generated.append(token_ids[step - 1]
                         if not ended and step <= len(token_ids) else pad_id)
        row.check_end(torch.tensor(generated))
        row.put(torch.tensor(generated[-1:]), step)
    result = row.end()
    assert ''.join(pieces) == result.text
    return result


def test_a_row_ends_at_its_own_stop_limit_end_or_cancellation(tokenizer):
    ids = tokenizer('The cat sat. The dog ran far away',
                    add_special_tokens=False).input_ids
    full = run_row(tokenizer, ids)
    assert (full.text, full.finish_reason) == \
        ('The cat sat. The dog ran far away', 'length')
    stopped = run_row(tokenizer, ids, stops=['dog'])
    assert (stopped.text, stopped.finish_reason) == ('The cat sat. The ',
                                                     'stop')
    assert stopped.completion_tokens < len(ids)
    limited = run_row(tokenizer, ids, max_tokens=3)
    assert limited.finish_reason == 'length'
    assert limited.completion_tokens == 3
    assert limited.text == tokenizer.decode(ids[:3]).strip()
    ended = run_row(tokenizer, ids[:4] + [tokenizer.eos_token_id] + ids[4:])
    assert (ended.text, ended.finish_reason, ended.completion_tokens) == \
        (tokenizer.decode(ids[:4]).strip(), 'stop', 5)
    cancelled = run_row(tokenizer, ids, is_cancelled=lambda: True)
    assert cancelled.finish_reason == 'cancelled'
    assert cancelled.completion_tokens == 1
