"""Special-token strings inside messages: tokenized as text, not as tokens.

A message may hold the text of one of the tokenizer's special tokens
(``</s>``, ``<|im_end|>``). Tokenized as it stands, that text becomes the
special token itself: an answer holding ``</s>`` teaches the model to stop
mid-answer, and a served question can forge the template's turns. With
``special_tokens_in_content='text'`` (the default) such strings become
ordinary sub-word ids, as a tokenizer without those special tokens would give
them, and special tokens come only from the template's own text;
``'special'`` keeps the official LLaVA behaviour.

:func:`encode_keeping_text` does it in one call of a copy of the tokenizer's
``tokenizers`` backend that matches no special token
(``encode_special_tokens``) but has, for each special token, an added
non-special marker: a private-use character matched as that token is
(same ``lstrip``, ``rstrip``, ``single_word``, ``normalized``). The
template's special-token strings are replaced by their markers, the text is
encoded once, and marker ids and offsets are mapped back. Tokenizing the
pieces between special tokens one by one would not do: a sentencepiece-style
tokenizer (LLaMA, Mistral) prefixes ``▁`` at the start of a string but not
after a special token, so ``</s>USER`` gives ``USER`` where a new call on
``USER`` gives ``▁US`` ``ER``.
"""
import re
import weakref
from typing import Optional, Sequence

from tokenizers import AddedToken, Tokenizer

#: What a special-token string inside a message becomes.
CONTENT_SPECIALS = ('text', 'special')
#: Markers are characters of Unicode's Supplementary Private Use Area-A.
MARKER_BASE = 0xF0000

Span = tuple[int, int]


def keeps_text(special_tokens_in_content: str) -> bool:
    """Whether special-token strings in messages stay text; an unknown
    setting fails loudly."""
    if special_tokens_in_content not in CONTENT_SPECIALS:
        raise ValueError(
            f'special_tokens_in_content must be one of {CONTENT_SPECIALS}, '
            f'got {special_tokens_in_content!r}.')
    return special_tokens_in_content == 'text'


class _TextBackend:
    """A tokenizer's special tokens, a pattern that finds their strings and
    (built on first use: copying a backend takes a fraction of a second)
    the marker backend of :func:`encode_keeping_text`."""

    def __init__(self, tokenizer) -> None:
        self.size = len(tokenizer)
        self.specials = {token.content: (token_id, token) for token_id, token
                         in sorted(tokenizer.added_tokens_decoder.items())
                         if token.special}
        self.strings = {token_id: content
                        for content, (token_id, _) in self.specials.items()}
        # Longest first, so a special token wins over the ones it contains
        # (leftmost-longest, as the backend matches added tokens).
        strings = sorted(self.specials, key=len, reverse=True)
        self.pattern = re.compile('|'.join(map(re.escape, strings))
                                  or '(?!)')
        self.backend: Optional[Tokenizer] = None

    def build_backend(self, tokenizer) -> None:
        backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        backend.encode_special_tokens = True
        self.markers, self.marker_ids = {}, {}
        for index, (content, (token_id, token)) in enumerate(
                self.specials.items()):
            marker = chr(MARKER_BASE + index)
            backend.add_tokens([AddedToken(
                marker, single_word=token.single_word, lstrip=token.lstrip,
                rstrip=token.rstrip, normalized=token.normalized,
                special=False)])
            self.markers[content] = marker
            self.marker_ids[backend.token_to_id(marker)] = token_id
        self.marker_range = (MARKER_BASE, MARKER_BASE + len(self.specials))
        self.backend = backend


_BACKENDS = weakref.WeakKeyDictionary()


def _text_backend(tokenizer) -> _TextBackend:
    found = _BACKENDS.get(tokenizer)
    # Tokens added to the tokenizer since make the cached entry stale.
    if found is None or found.size != len(tokenizer):
        found = _BACKENDS[tokenizer] = _TextBackend(tokenizer)
    return found


def special_string_spans(tokenizer, text: str) -> list[Span]:
    """Where ``text`` holds the string of a special token of ``tokenizer``,
    as ``(start, end)`` character spans."""
    return [match.span()
            for match in _text_backend(tokenizer).pattern.finditer(text)]


def holds_special_string(tokenizer, text: str,
                         spans: Sequence[Span]) -> bool:
    """Whether the string of a special token of ``tokenizer`` stands inside
    one of the ``(start, end)`` character ``spans`` of ``text``."""
    pattern = _text_backend(tokenizer).pattern
    return any(pattern.search(text, start, end) for start, end in spans)


def encode_keeping_text(tokenizer,
                        text: str,
                        special_spans: Sequence[Span],
                        add_special_tokens: bool = True,
                        sample_id: object = None
                        ) -> tuple[list[int], list[Span]]:
    """Tokenize ``text`` with special-token strings as special tokens only
    at ``special_spans``; everywhere else they are text.

    Args:
        tokenizer: A transformers fast tokenizer.
        text (str): The text.
        special_spans (Sequence[tuple[int, int]]): Sorted character spans of
            special-token strings that stay special tokens (the template's
            own), each one found by :func:`special_string_spans`.
        add_special_tokens (bool): Whether the tokenizer adds its BOS (and
            the like). Defaults to True.
        sample_id: Named in errors.

    Returns:
        tuple[list[int], list[tuple[int, int]]]: ``input_ids`` and each
        token's character span in ``text``, as ``tokenizer(text,
        return_offsets_mapping=True)`` gives them.

    Raises:
        ValueError: ``text`` holds a marker character, a special token at
            ``special_spans`` does not match there, or the tokenizer makes a
            special token out of plain text.
    """
    found = _text_backend(tokenizer)
    if found.backend is None:
        found.build_backend(tokenizer)
    first, last = found.marker_range
    reserved = next((char for char in text if first <= ord(char) < last),
                    None)
    if reserved is not None:
        raise ValueError(
            f'Sample {sample_id!r}: the text holds U+{ord(reserved):X}, a '
            'private-use character mmllava reserves to keep special-token '
            'strings in messages as text.')
    # starts[i]: where the marked text's character i starts in ``text``.
    pieces, starts, position = [], [], 0
    for start, end in special_spans:
        pieces += [text[position:start], found.markers[text[start:end]]]
        starts += list(range(position, start)) + [start]
        position = end
    pieces.append(text[position:])
    starts += list(range(position, len(text) + 1))
    encoding = found.backend.encode(''.join(pieces),
                                    add_special_tokens=add_special_tokens)
    matched = sum(token_id in found.marker_ids for token_id in encoding.ids)
    if matched != len(special_spans):
        # A marker left as text would give an id of garbage in its place.
        raise ValueError(
            f'Sample {sample_id!r}: {len(special_spans) - matched} of the '
            "template's special tokens do not match where they stand (a "
            'single_word token inside a word?).')
    input_ids, offsets = [], []
    for token_id, (start, end) in zip(encoding.ids, encoding.offsets):
        span = (starts[start], starts[end])
        if token_id in found.marker_ids:
            token_id = found.marker_ids[token_id]
        elif token_id in found.strings and \
                text[span[0]:span[1]] == found.strings[token_id]:
            # (An unknown character that becomes <unk> has other text.)
            raise ValueError(
                f'Sample {sample_id!r}: the tokenizer makes its special '
                f'token {found.strings[token_id]!r} out of plain text, so it '
                "cannot stay text in a message; use special_tokens_in_content="
                "'special' or clean the data.")
        input_ids.append(token_id)
        offsets.append(span)
    return input_ids, offsets
