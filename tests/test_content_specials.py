"""``mmllava/content_specials.py`` with special tokens of every kind: the
marker path must give the tokenizer's own ids and offsets where all special
tokens are the template's, and text ids where they are not.

(The conversations of the LLaVA and LLaVA-NeXT data are checked in
``tests/test_conversation.py`` and ``tests/test_templates_chatml.py``.)
"""
import copy

import pytest
from tokenizers import AddedToken

from mmllava.content_specials import (encode_keeping_text,
                                      holds_special_string, keeps_text,
                                      special_string_spans)


@pytest.fixture(scope='module')
def odd_tokenizer(tokenizer):
    """The LLaMA tokenizer with special tokens that strip blanks and one
    matched after normalization."""
    odd = copy.deepcopy(tokenizer)
    odd.add_tokens([
        AddedToken('<mask>', lstrip=True, special=True, normalized=False),
        AddedToken('[SEP]', rstrip=True, special=True, normalized=True),
        AddedToken('<cls>', single_word=True, special=True,
                   normalized=False)], special_tokens=True)
    return odd


def official(tokenizer, text, add_special_tokens=True):
    encoded = tokenizer(text, return_offsets_mapping=True,
                        add_special_tokens=add_special_tokens)
    return encoded.input_ids, [tuple(span) for span in
                               encoded.offset_mapping]


@pytest.mark.parametrize('text', [
    'a <mask> b', 'x   <mask>\n[SEP]  y', '<s> hi </s>USER: yes',
    '<cls> first', '</s></s><s>', 'no special token at all'])
@pytest.mark.parametrize('add_special_tokens', [True, False])
def test_markers_match_as_the_special_tokens_do(text, add_special_tokens,
                                                odd_tokenizer):
    assert encode_keeping_text(
        odd_tokenizer, text, special_string_spans(odd_tokenizer, text),
        add_special_tokens) == official(odd_tokenizer, text,
                                        add_special_tokens)


def test_special_strings_outside_the_spans_are_text(odd_tokenizer):
    text = 'x   <mask>\n[SEP]  y</s>'
    ids, offsets = encode_keeping_text(odd_tokenizer, text, [])
    assert ids == odd_tokenizer(text, split_special_tokens=True).input_ids
    assert [text[start:end] for start, end in offsets][-3:] == \
        ['</', 's', '>']
    keep_eos = [span for span in special_string_spans(odd_tokenizer, text)
                if text[span[0]:span[1]] == '</s>']
    ids, _ = encode_keeping_text(odd_tokenizer, text, keep_eos)
    assert ids[-1] == odd_tokenizer.eos_token_id
    assert odd_tokenizer.convert_tokens_to_ids('<mask>') not in ids


def test_a_single_word_token_inside_a_word_is_refused(odd_tokenizer):
    text = 'word<cls> z'
    with pytest.raises(ValueError, match="'s-1': 1 of the template's"):
        encode_keeping_text(odd_tokenizer, text,
                            special_string_spans(odd_tokenizer, text),
                            sample_id='s-1')


def test_a_tokenizer_that_makes_a_special_token_from_text_is_refused(
        tokenizer):
    odd = copy.deepcopy(tokenizer)
    ing = odd.convert_tokens_to_ids('ing')
    odd.add_tokens([AddedToken('ing', special=True, normalized=False)],
                   special_tokens=True)
    assert odd.convert_tokens_to_ids('ing') == ing
    # 'Qing' is '▁Q' 'ing' to the model.
    assert holds_special_string(odd, 'Qing', [(0, 4)])
    with pytest.raises(ValueError, match="'s-2'.*'ing' out of plain text"):
        encode_keeping_text(odd, 'Qing', [], sample_id='s-2')


def test_tokens_added_after_first_use_are_found(tokenizer):
    grown = copy.deepcopy(tokenizer)
    assert special_string_spans(grown, 'a <sep> b') == []
    grown.add_tokens([AddedToken('<sep>', special=True)],
                     special_tokens=True)
    assert special_string_spans(grown, 'a <sep> b') == [(2, 7)]


def test_only_text_and_special_are_settings():
    assert keeps_text('text') and not keeps_text('special')
    with pytest.raises(ValueError, match="got 'escape'"):
        keeps_text('escape')
