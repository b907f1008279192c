"""``chatml_direct`` (``mmllava/templates/chatml_direct.py``, LLaVA-1.6-34B)
against the official LLaVA code.

The reference below restates, without importing anything from ``mmllava``,
haotian-liu/LLaVA's ``conv_chatml_direct`` rendered by
``Conversation.get_prompt`` (``SeparatorStyle.MPT``), tokenized by
``tokenizer_image_token`` and masked by ``preprocess_mpt``. The tokenizer is
a byte-level BPE with ``<|im_start|>`` and ``<|im_end|>``, trained offline
(:mod:`mmllava.testing.demo.qwen_tokenizer`); no tokenizer of the Yi family
ships in a wheel.

``preprocess_mpt`` never counts the ``<|im_end|>`` that closes the last
round, so its count ends short of the sample and its mismatch branch zeroes
every label, whatever the tokenizer. The ids are compared token for token;
the labels are checked to be the answers and their ``<|im_end|>``.
"""
import copy
import random

import pytest
import torch
from transformers import AutoTokenizer

from mmllava.conversation import (build_generation_prompt,
                                  tokenize_conversation)
from mmllava.templates import get_template
from mmllava.testing.demo.qwen_tokenizer import write_qwen_tokenizer
from mmllava.testing.supervision import supervised_runs

REF_IGNORE_INDEX = -100
REF_IMAGE_TOKEN_INDEX = -200
REF_IMAGE = '<image>'
REF_SYSTEM = '<|im_start|>system\nAnswer the questions.'
REF_ROLES = ('<|im_start|>user\n', '<|im_start|>assistant\n')
REF_SEP = '<|im_end|>'


def ref_tokenizer_image_token(prompt, tokenizer):
    """``tokenizer_image_token`` (this tokenizer adds no BOS)."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(REF_IMAGE)]
    input_ids = list(chunks[0])
    for chunk in chunks[1:]:
        input_ids += [REF_IMAGE_TOKEN_INDEX] + chunk
    return input_ids


def ref_preprocess_multimodal(turns):
    for turn in turns:
        if REF_IMAGE in turn['value']:
            value = turn['value'].replace(REF_IMAGE, '').strip()
            turn['value'] = (REF_IMAGE + '\n' + value).strip()
    return turns


def ref_get_prompt(messages):
    """``get_prompt`` of ``SeparatorStyle.MPT``; None for the generation
    prompt."""
    ret = REF_SYSTEM + REF_SEP
    for i, message in enumerate(messages):
        ret += REF_ROLES[i % 2] + (message + REF_SEP if message else '')
    return ret


def ref_preprocess_mpt(turns, tokenizer, has_image):
    """``preprocess_mpt`` for one sample: ``(ids, labels, mismatch)``."""
    if turns[0]['from'] != 'human':
        turns = turns[1:]
    conversation = ref_get_prompt([t['value'] for t in turns])

    def length(text):
        return len(ref_tokenizer_image_token(text, tokenizer) if has_image
                   else tokenizer(text).input_ids)

    input_ids = torch.tensor(ref_tokenizer_image_token(conversation, tokenizer)
                             if has_image else tokenizer(conversation).input_ids)
    target = input_ids.clone()
    total_len = len(target)
    sep = REF_SEP + REF_ROLES[1]
    rounds = conversation.split(REF_SEP)
    re_rounds = [REF_SEP.join(rounds[:3])]
    for index in range(3, len(rounds), 2):
        re_rounds.append(REF_SEP.join(rounds[index:index + 2]))
    cur_len = 0
    for i, rou in enumerate(re_rounds):
        if rou == '':
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        parts[0] += sep
        round_len = length(rou)
        instruction_len = length(parts[0]) - 1
        if i != 0 and getattr(tokenizer, 'legacy', False):
            round_len += 1
            instruction_len += 1
        target[cur_len:cur_len + instruction_len] = REF_IGNORE_INDEX
        cur_len += round_len
    target[cur_len:] = REF_IGNORE_INDEX
    mismatch = False
    if cur_len < tokenizer.model_max_length and cur_len != total_len:
        target[:] = REF_IGNORE_INDEX
        mismatch = True
    return input_ids.tolist(), target.tolist(), mismatch


def ref_training(record, tokenizer):
    turns = copy.deepcopy(record['conversations'])
    has_image = 'image' in record
    if has_image:
        turns = ref_preprocess_multimodal(turns)
    return ref_preprocess_mpt(turns, tokenizer, has_image)


@pytest.fixture(scope='module')
def chatml_tokenizer(tmp_path_factory):
    folder = write_qwen_tokenizer(str(tmp_path_factory.mktemp('chatml')))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.bos_token_id is None
    return tokenizer




def assert_matches_official(record, tokenizer):
    """Ids token for token; the labels the official code meant (it zeroes
    them): every answer with its ``<|im_end|>``."""
    has_image = 'image' in record
    ref_ids, ref_labels, mismatch = ref_training(record, tokenizer)
    assert mismatch and set(ref_labels) == {REF_IGNORE_INDEX}
    ids, labels = tokenize_conversation(
        record['conversations'], get_template('chatml_direct'), tokenizer,
        has_image, sample_id=record.get('id'))
    assert ids == ref_ids, record
    answers = [turn['value'] for turn in record['conversations'][1::2]]
    runs = supervised_runs(ids, labels, tokenizer)
    # A newline or blank that opens an answer may merge with the newline
    # after "assistant" into one token, which is then learnt.
    assert [run.lstrip('\n') for run in runs] == \
        [answer.lstrip('\n') + REF_SEP for answer in answers], record


RECORDS = [
    {'id': '000000033471', 'image': 'coco/train2017/000000033471.jpg',
     'conversations': [
         {'from': 'human', 'value':
          '<image>\nWhat are the colors of the bus in the image?'},
         {'from': 'gpt', 'value': 'The bus in the image is white and red.'},
         {'from': 'human', 'value':
          'What feature can be seen on the back of the bus?'},
         {'from': 'gpt', 'value':
          'The back of the bus features an advertisement.'}]},
    {'id': '000000052846', 'image': 'coco/train2017/000000052846.jpg',
     'conversations': [
         {'from': 'human', 'value':
          'What do you see happening in this image?\n<image>'},
         {'from': 'gpt', 'value':
          'The image shows a man riding a skateboard down a ramp.'}]},
    {'id': 'i6IyJda_0', 'conversations': [
        {'from': 'human', 'value': 'How do I reverse a list in Python?'},
        {'from': 'gpt', 'value': 'Use slicing: `items[::-1]`.'},
        {'from': 'human', 'value': ' And in place? '},
        {'from': 'gpt', 'value': '`items.reverse()` reverses it in place.'}]},
]

WORDS = ['the', 'The', 'cat', 'user', 'assistant', 'system', 'Answer',
         'image', 'Hello', "don't", '12', '3.14', '!', '?', ',', ':', '(',
         '"', '#', '`code`', '<b>', 'naïve', '日本語', '😀', 'é']
JOINERS = ['', ' ', ' ', '  ', '\n', '\n\n', '\t']


def random_text(rng):
    parts = [rng.choice(WORDS) for _ in range(rng.randint(1, 10))]
    text = parts[0]
    for part in parts[1:]:
        text += rng.choice(JOINERS) + part
    if rng.random() < 0.2:
        text = rng.choice([' ', '\n', '  ']) + text
    if rng.random() < 0.2:
        text += rng.choice([' ', '\n'])
    return text


def random_cases(seed=20240130, num=60):
    rng = random.Random(seed)
    cases = []
    for index in range(num):
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns += [{'from': 'human', 'value': random_text(rng)},
                      {'from': 'gpt', 'value': random_text(rng)}]
        record = {'id': f'chatml_direct-{index}', 'conversations': turns}
        if rng.random() < 0.7:
            record['image'] = f'{index}.jpg'
            turns[0]['value'] = rng.choice([
                REF_IMAGE + '\n' + turns[0]['value'],
                turns[0]['value'] + REF_IMAGE])
        cases.append(record)
    return cases


@pytest.mark.parametrize('record', RECORDS + random_cases(),
                         ids=lambda r: r['id'])
def test_ids_match_official_and_answers_are_learnt(record, chatml_tokenizer):
    assert_matches_official(record, chatml_tokenizer)


@pytest.mark.parametrize('messages', [
    ['<image>\nWhat is in the photo?'],
    ['<image>\nWhat color is the bus?', 'Red and white.',
     'Where is it going?']], ids=['one-question', 'multi-turn'])
def test_generation_prompt_matches_official(messages, chatml_tokenizer):
    turns = [{'from': 'human' if i % 2 == 0 else 'gpt', 'value': message}
             for i, message in enumerate(messages)]
    ids = build_generation_prompt(turns, get_template('chatml_direct'),
                                  chatml_tokenizer, has_image=True)
    prompt = ref_get_prompt(list(messages) + [None])
    assert prompt.endswith('<|im_start|>assistant\n')
    assert ids == ref_tokenizer_image_token(prompt, chatml_tokenizer)


def test_special_strings_in_messages_stay_text(chatml_tokenizer):
    turns = [{'from': 'human', 'value': 'Say <|im_end|> please.'},
             {'from': 'gpt', 'value': 'Here: <|im_end|><|im_start|>user'}]
    template = get_template('chatml_direct')
    im_end = chatml_tokenizer.convert_tokens_to_ids('<|im_end|>')
    ids, labels = tokenize_conversation(turns, template, chatml_tokenizer,
                                        has_image=False)
    assert ids.count(im_end) == 3
    assert labels[-1] == im_end
    official, _ = tokenize_conversation(
        turns, template, chatml_tokenizer, has_image=False,
        special_tokens_in_content='special')
    assert official == ref_training({'conversations': turns},
                                    chatml_tokenizer)[0]
    assert official.count(im_end) == 5
