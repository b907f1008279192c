"""``llava_v0`` (``mmllava/templates/llava_v0.py``) against the official
LLaVA code.

The reference below restates, without importing anything from ``mmllava``,
how haotian-liu/LLaVA trains a conversation with ``conv_llava_v0``
(``SeparatorStyle.SINGLE``, version ``Unknown``): ``preprocess``'s default
branch, ``_add_speaker_and_signal`` for the text, ``tokenizer_image_token``
(or ``_tokenize_fn``) for the ids and ``_mask_targets`` for the labels. The
tokenizer is the LLaMA-format sentencepiece model of the mistral-common
wheel, as Vicuna's.

The ids are compared token for token. The labels are not: ``_mask_targets``
counts each turn's tokens from a tokenization of that turn alone (its BOS
and leading ``▁`` included), so its masks drift from the text one token per
turn; the test shows the drift and checks that ours learn each answer and
the ``\\n### `` that ends it.
"""
import copy
import random

import pytest

from mmllava.conversation import (build_generation_prompt,
                                  tokenize_conversation)
from mmllava.templates import get_template
from mmllava.testing.supervision import supervised_runs

REF_IGNORE_INDEX = -100
REF_IMAGE_TOKEN_INDEX = -200
REF_IMAGE = '<image>'
REF_SYSTEM = ('A chat between a curious human and an artificial intelligence '
              'assistant. The assistant gives helpful, detailed, and polite '
              "answers to the human's questions.")
REF_ROLES = {'human': 'Human', 'gpt': 'Assistant'}


def ref_tokenizer_image_token(prompt, tokenizer):
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(REF_IMAGE)]
    input_ids, offset = [], 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        input_ids.append(chunks[0][0])
    separated = []
    for chunk in chunks:
        separated += [chunk, [REF_IMAGE_TOKEN_INDEX] * (offset + 1)]
    for chunk in separated[:-1]:
        input_ids.extend(chunk[offset:])
    return input_ids


def ref_preprocess_multimodal(turns):
    for turn in turns:
        if REF_IMAGE in turn['value']:
            value = turn['value'].replace(REF_IMAGE, '').strip()
            turn['value'] = (REF_IMAGE + '\n' + value).strip()
    return turns


def ref_preprocess_default(turns, tokenizer, has_image):
    """``preprocess``'s default branch for one sample: ``(ids, labels)``.
    The pad token is the unk token, as the official training sets it."""
    header = f'{REF_SYSTEM}\n\n'
    conversation = header
    for turn in turns:
        turn['value'] = ('### ' + REF_ROLES[turn['from']] + ': '
                         + turn['value'] + '\n')
        conversation += turn['value']
    conversation += '### '

    def length(text):
        if has_image:
            return len(ref_tokenizer_image_token(text, tokenizer))
        return sum(token != tokenizer.unk_token_id
                   for token in tokenizer(text).input_ids)

    input_ids = ref_tokenizer_image_token(conversation, tokenizer) \
        if has_image else tokenizer(conversation).input_ids
    target = list(input_ids)
    lens = [length(header)] + [length(turn['value']) for turn in turns]
    cur_idx = lens[0]
    target[:cur_idx] = [REF_IGNORE_INDEX] * cur_idx
    for tokenized_len, turn in zip(lens[1:], turns):
        if turn['from'] == 'human':
            end = min(cur_idx + tokenized_len, len(target))
            for i in range(cur_idx + 2, end):
                target[i] = REF_IGNORE_INDEX
        cur_idx += tokenized_len
    return input_ids, target, conversation


def ref_training(record, tokenizer):
    turns = copy.deepcopy(record['conversations'])
    has_image = 'image' in record
    if has_image:
        turns = ref_preprocess_multimodal(turns)
    return ref_preprocess_default(turns, tokenizer, has_image)




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
        {'from': 'human', 'value': 'And in place?'},
        {'from': 'gpt', 'value': '`items.reverse()` reverses it in place.'}]},
]


@pytest.mark.parametrize('record', RECORDS, ids=lambda r: r['id'])
def test_ids_are_the_official_training_ids(record, tokenizer):
    ref_ids, _, conversation = ref_training(record, tokenizer)
    ids, labels = tokenize_conversation(
        record['conversations'], get_template('llava_v0'), tokenizer,
        has_image='image' in record, sample_id=record['id'])
    assert ids == ref_ids, conversation
    answers = [turn['value'] for turn in record['conversations'][1::2]]
    # The blank after a middle '###' is one token with the next 'Human'.
    assert supervised_runs(ids, labels, tokenizer) == \
        [f'{answer}\n### Human' for answer in answers[:-1]] + \
        [f'{answers[-1]}\n### ']


def test_official_masks_drift_one_token_per_turn(tokenizer):
    record = RECORDS[2]
    ref_ids, ref_labels, _ = ref_training(record, tokenizer)
    runs = supervised_runs(ref_ids, ref_labels, tokenizer)
    # It learns the first question's opening, then the first answer from
    # 'Assistant:' on and, a token late, the next question's first word.
    assert runs == [
        '### Human',
        'Assistant: Use slicing: `items[::-1]`.\n### Human: And',
        '`items.reverse()` reverses it in place.\n### ']
    ids, labels = tokenize_conversation(
        record['conversations'], get_template('llava_v0'), tokenizer,
        has_image=False)
    assert ids == ref_ids and labels != ref_labels


def test_generation_prompt_is_the_training_prompt_up_to_the_answer(
        tokenizer):
    record = RECORDS[0]
    template = get_template('llava_v0')
    ids, labels = tokenize_conversation(record['conversations'], template,
                                        tokenizer, has_image=True)
    prompt = build_generation_prompt(record['conversations'][:1], template,
                                     tokenizer, has_image=True)
    assert ids[:len(prompt)] == prompt
    assert tokenizer.decode(prompt[-4:]).endswith('### Assistant:')
    first = next(i for i, label in enumerate(labels)
                 if label != REF_IGNORE_INDEX)
    assert first == len(prompt)


def test_generation_stops_at_the_turn_signal():
    from mmllava.templates import cut_at_stop
    template = get_template('llava_v0')
    assert cut_at_stop(' A red bus.\n### Human: and?', template.stop) == \
        'A red bus.'


def random_records(seed=20230417, num=40):
    rng = random.Random(seed)
    words = ['the', 'The', 'cat', 'Human', 'Assistant', '###', '#', 'image',
             "don't", '12', '!', '?', ':', '"', '`code`', 'naïve', '日本語',
             '😀']
    joiners = ['', ' ', ' ', '  ', '\n', '\n\n']

    def text():
        parts = [rng.choice(words) for _ in range(rng.randint(1, 8))]
        out = parts[0]
        for part in parts[1:]:
            out += rng.choice(joiners) + part
        return out

    records = []
    for index in range(num):
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns += [{'from': 'human', 'value': text()},
                      {'from': 'gpt', 'value': text()}]
        record = {'id': f'v0-{index}', 'conversations': turns}
        if rng.random() < 0.6:
            record['image'] = f'{index}.jpg'
            turns[0]['value'] = rng.choice([
                REF_IMAGE + '\n' + turns[0]['value'],
                turns[0]['value'] + REF_IMAGE])
        records.append(record)
    return records


@pytest.mark.parametrize('record', random_records(), ids=lambda r: r['id'])
def test_random_conversations_have_the_official_ids(record, tokenizer):
    ref_ids, _, conversation = ref_training(record, tokenizer)
    ids, labels = tokenize_conversation(
        record['conversations'], get_template('llava_v0'), tokenizer,
        has_image='image' in record, sample_id=record['id'])
    assert ids == ref_ids, conversation
    assert labels[-1] != REF_IGNORE_INDEX
