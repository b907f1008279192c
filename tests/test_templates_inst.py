"""``llava_llama_2`` and ``mistral_instruct`` (``mmllava/templates/inst.py``)
against the official LLaVA code.

The reference below restates, without importing anything from ``mmllava``,
what haotian-liu/LLaVA does for these templates: ``conv_llava_llama_2`` and
``conv_mistral_instruct`` rendered by ``Conversation.get_prompt``
(``SeparatorStyle.LLAMA_2``), tokenized by ``tokenizer_image_token`` and
masked by ``preprocess_llama_2`` (``llava/train/train.py``). The tokenizer is
Mistral-7B's own sentencepiece model (the mistral-common wheel's, which is
LLaMA's format), loaded as transformers' LlamaTokenizer.
"""
import copy
import random

import pytest
import torch

from mmllava.conversation import (build_generation_prompt,
                                  tokenize_conversation)
from mmllava.templates import get_template
from mmllava.testing.supervision import supervised_runs

REF_IGNORE_INDEX = -100
REF_IMAGE_TOKEN_INDEX = -200
REF_IMAGE = '<image>'
REF_LLAVA_LLAMA_2_SYSTEM = (
    'You are a helpful language and vision assistant. You are able to '
    'understand the visual content that the user provides, and assist the '
    'user with a variety of tasks using natural language.')
# name: (system, sep, sep2)
REF_CONVS = {'llava_llama_2': (REF_LLAVA_LLAMA_2_SYSTEM, '<s>', '</s>'),
             'mistral_instruct': ('', '', '</s>')}
NAMES = list(REF_CONVS)


# ---------------------------------------------------------------------------
# The official references.
# ---------------------------------------------------------------------------
def ref_tokenizer_image_token(prompt, tokenizer):
    """``llava.mm_utils.tokenizer_image_token``."""
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


def ref_get_prompt(name, messages):
    """``Conversation.get_prompt`` of ``SeparatorStyle.LLAMA_2``; messages
    alternate user and assistant, None for the generation prompt."""
    system, sep, sep2 = REF_CONVS[name]
    ret = ''
    for i, message in enumerate(messages):
        if i == 0:
            assert message
        if message:
            if i == 0 and system:
                message = f'<<SYS>>\n{system}\n<</SYS>>\n\n' + message
            if i % 2 == 0:
                ret += sep + f'[INST] {message} [/INST]'
            else:
                ret += ' ' + message + ' ' + sep2
    return ret.lstrip(sep)


def ref_preprocess_llama_2(name, turns, tokenizer, has_image):
    """``preprocess_llama_2`` for one sample: ``(ids, labels, mismatch)``."""
    if turns[0]['from'] != 'human':
        turns = turns[1:]
    conversation = ref_get_prompt(name, [t['value'] for t in turns])
    if has_image:
        input_ids = torch.tensor(ref_tokenizer_image_token(conversation,
                                                           tokenizer))
    else:
        input_ids = torch.tensor(tokenizer(conversation).input_ids)
    target = input_ids.clone()
    # The official code counts the non-pad tokens of a padded batch; for
    # one unpadded conversation that is its length.
    total_len = len(target)
    sep, sep2 = '[/INST] ', REF_CONVS[name][2]
    rounds = conversation.split(sep2)
    cur_len = 1
    target[:cur_len] = REF_IGNORE_INDEX
    for rou in rounds:
        if rou == '':
            break
        parts = rou.split(sep)
        if len(parts) != 2:
            break
        parts[0] += sep
        if has_image:
            round_len = len(ref_tokenizer_image_token(rou, tokenizer))
            instruction_len = len(
                ref_tokenizer_image_token(parts[0], tokenizer)) - 2
        else:
            round_len = len(tokenizer(rou).input_ids)
            instruction_len = len(tokenizer(parts[0]).input_ids) - 2
        target[cur_len:cur_len + instruction_len] = REF_IGNORE_INDEX
        cur_len += round_len
    target[cur_len:] = REF_IGNORE_INDEX
    mismatch = False
    if cur_len < tokenizer.model_max_length and cur_len != total_len:
        target[:] = REF_IGNORE_INDEX
        mismatch = True
    return input_ids.tolist(), target.tolist(), mismatch


def ref_training(name, record, tokenizer):
    turns = copy.deepcopy(record['conversations'])
    has_image = 'image' in record
    if has_image:
        turns = ref_preprocess_multimodal(turns)
    return ref_preprocess_llama_2(name, turns, tokenizer, has_image)


# ---------------------------------------------------------------------------
# Fixtures and comparison.
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def llama_tokenizer(tokenizer):
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (1, 2)
    assert tokenizer.legacy is False
    return tokenizer


def describe(ours, official, tokenizer):
    rows = ['  i  ours(id,label)        official(id,label)    token']
    for i in range(max(len(ours[0]), len(official[0]))):
        mine = (ours[0][i], ours[1][i]) if i < len(ours[0]) else None
        ref = (official[0][i], official[1][i]) \
            if i < len(official[0]) else None
        token_id = (mine or ref)[0]
        token = '<IMAGE>' if token_id == REF_IMAGE_TOKEN_INDEX else \
            tokenizer.convert_ids_to_tokens(token_id)
        flag = '' if mine == ref else '  <-- differs'
        rows.append(f'{i:3d}  {str(mine):22s}  {str(ref):22s}  {token!r}'
                    f'{flag}')
    return '\n'.join(rows)


def assert_matches_official(name, record, tokenizer):
    ref_ids, ref_labels, mismatch = ref_training(name, record, tokenizer)
    assert not mismatch, f'official mismatch branch fired: {record!r}'
    ours = tokenize_conversation(
        record['conversations'], get_template(name), tokenizer,
        has_image='image' in record, sample_id=record.get('id'))
    assert ours == (ref_ids, ref_labels), (
        f'{name} record {record!r}\n'
        f'{describe(ours, (ref_ids, ref_labels), tokenizer)}')
    # Every answer is learnt, so the comparison is never vacuous.
    assert sum(label != REF_IGNORE_INDEX for label in ours[1]) >= \
        2 * len(record['conversations']) // 2
    return ours




# ---------------------------------------------------------------------------
# Records shaped like LLaVA-1.5's mix665k (LLaVA-1.6 trains on its like).
# ---------------------------------------------------------------------------
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
          'The image shows a man riding a skateboard down a ramp.\n\nHe is '
          'wearing a helmet and knee pads, while 2-3 people watch.'}]},
    {'id': '393224', 'image': 'coco/train2017/000000393224.jpg',
     'conversations': [
         {'from': 'human', 'value':
          '<image>\nWhat is the man holding?\n'
          'Answer the question using a single word or phrase.'},
         {'from': 'gpt', 'value': 'Frisbee'},
         {'from': 'human', 'value':
          'Is it sunny?\nAnswer the question using a single word or phrase.'},
         {'from': 'gpt', 'value': 'Yes'},
         {'from': 'human', 'value': 'How many people are there?'},
         {'from': 'gpt', 'value': '2'}]},
    {'id': 'refcoco_1', 'image': 'coco/train2017/000000580957.jpg',
     'conversations': [
         {'from': 'human', 'value':
          '<image>\nPlease provide the bounding box coordinate of the region '
          'this sentence describes: left man in blue.'},
         {'from': 'gpt', 'value': '[0.0, 0.21, 0.33, 0.9]'}]},
    {'id': 'i6IyJda_0', 'conversations': [
        {'from': 'human', 'value': 'How do I reverse a list in Python?'},
        {'from': 'gpt', 'value':
         'Use slicing:\n\n```python\nprint(items[::-1])  # [3, 2, 1]\n```'},
        {'from': 'human', 'value': ' And in place? '},
        {'from': 'gpt', 'value': '`items.reverse()` reverses it in place.'}]},
]


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('record', RECORDS, ids=lambda r: r['id'])
def test_matches_official_on_665k_records(name, record, llama_tokenizer):
    assert_matches_official(name, record, llama_tokenizer)


# ---------------------------------------------------------------------------
# Seeded random conversations.
# ---------------------------------------------------------------------------
WORDS = [
    'the', 'The', 'cat', 'USER', 'INST', '[INST]', '[/INST]', 'SYS', '<<SYS>>',
    'Assistant:', 'image', 'Hello', 'ing', 's', "'s", "don't", 'New York',
    '12', '3.14', '-7', '42%', '!', '?', '...', ',', ':', '(', ')', '"',
    '[0.12, 0.5]', '#', '*bold*', '`code`', '<b>', 'naïve', '日本語', '😀',
    '\u00a0', 'é', '▁']
JOINERS = ['', ' ', ' ', ' ', '  ', '\n', '\n\n', '\t']
OPENERS = ['1', '2 ', '"', '.', ',', '-', '*', '\n', ' ', '...', '[', '😀']


def random_text(rng):
    parts = [rng.choice(WORDS) for _ in range(rng.randint(1, 10))]
    text = parts[0]
    for part in parts[1:]:
        text += rng.choice(JOINERS) + part
    if rng.random() < 0.2:
        text = rng.choice([' ', '\n', '\t']) + text
    if rng.random() < 0.2:
        text += rng.choice([' ', '  ', '\n'])
    return text


def random_message(rng, is_answer):
    while True:
        text = random_text(rng)
        if is_answer and rng.random() < 0.4:
            text = rng.choice(OPENERS) + text
        # The official round separators make its counts give up (an answer
        # is followed by a blank).
        if '[/INST] ' not in text + ' ' and '</s>' not in text:
            return text


def random_cases(seed=20240130, num=120):
    rng = random.Random(seed)
    cases = []
    for index in range(num):
        name = rng.choice(NAMES)
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns.append({'from': 'human', 'value': random_message(rng, False)})
            turns.append({'from': 'gpt', 'value': random_message(rng, True)})
        record = {'id': f'{name}-{index}', 'conversations': turns}
        kind = rng.choice(['image', 'image', 'text', 'late_image'])
        if kind != 'text':
            record['image'] = f'{index}.jpg'
            turn = turns[0] if kind == 'image' else \
                turns[2 * rng.randrange(len(turns) // 2)]
            where = rng.choice(['before', 'after', 'middle', 'alone'])
            value = turn['value']
            turn['value'] = {
                'before': REF_IMAGE + '\n' + value,
                'after': value + '\n' + REF_IMAGE,
                'middle': value[:len(value) // 2] + REF_IMAGE
                + value[len(value) // 2:],
                'alone': REF_IMAGE}[where]
        cases.append((name, record))
    return cases


RANDOM_CASES = random_cases()


def official_agrees(name, record, tokenizer):
    return not ref_training(name, record, tokenizer)[2]


@pytest.mark.parametrize('name,record', RANDOM_CASES,
                         ids=[record['id'] for _, record in RANDOM_CASES])
def test_random_conversations_match_official(name, record, llama_tokenizer):
    assert_matches_official(name, record, llama_tokenizer)


# ---------------------------------------------------------------------------
# Generation prompts.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('messages', [
    ['<image>\nWhat is in the photo?'],
    ['<image>\nWhat color is the bus?', 'Red and white.',
     'Where is it going?']], ids=['one-question', 'multi-turn'])
def test_generation_prompt_matches_official(name, messages, llama_tokenizer):
    turns = [{'from': 'human' if i % 2 == 0 else 'gpt', 'value': message}
             for i, message in enumerate(messages)]
    ids = build_generation_prompt(turns, get_template(name), llama_tokenizer,
                                  has_image=True)
    prompt = ref_get_prompt(name, list(messages) + [None])
    assert prompt.endswith('[/INST]')
    assert ids == ref_tokenizer_image_token(prompt, llama_tokenizer)


@pytest.mark.parametrize('name', NAMES)
def test_generation_prompt_is_the_training_prompt_up_to_the_answer(
        name, llama_tokenizer):
    record = RECORDS[2]
    template = get_template(name)
    ids, labels = tokenize_conversation(record['conversations'], template,
                                        llama_tokenizer, has_image=True)
    prompt = build_generation_prompt(record['conversations'][:1], template,
                                     llama_tokenizer, has_image=True)
    assert ids[:len(prompt)] == prompt
    first = next(i for i, label in enumerate(labels)
                 if label != REF_IGNORE_INDEX)
    assert first == len(prompt)


def test_the_rendered_prompts_read_as_the_official_ones(llama_tokenizer):
    ids, _ = tokenize_conversation(RECORDS[0]['conversations'],
                                   get_template('llava_llama_2'),
                                   llama_tokenizer, has_image=False)
    text = llama_tokenizer.decode(ids)
    assert text.startswith('<s> [INST] <<SYS>>\nYou are a helpful language')
    assert '</s><s> [INST]' in text or '</s><s>[INST]' in text
    ids, _ = tokenize_conversation(RECORDS[0]['conversations'],
                                   get_template('mistral_instruct'),
                                   llama_tokenizer, has_image=False)
    assert llama_tokenizer.convert_ids_to_tokens(ids).count('<s>') == 1


# ---------------------------------------------------------------------------
# Where the official code gives up.
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('turns,answers', [
    ([{'from': 'human', 'value': 'Quote the tag.'},
      {'from': 'gpt', 'value': 'It reads [/INST] then stops.'},
      {'from': 'human', 'value': 'Again?'},
      {'from': 'gpt', 'value': 'No.'}],
     [' It reads [/INST] then stops. </s>', ' No. </s>']),
    ([{'from': 'human', 'value': 'What does </s> mean?'},
      {'from': 'gpt', 'value': 'End of sequence.'}],
     [' End of sequence. </s>']),
    ([{'from': 'human', 'value': 'Name a colour.'},
      {'from': 'gpt', 'value': 'Red.'},
      {'from': 'human', 'value': 'And another?'}],
     [' Red. </s>']),
], ids=['inst-in-answer', 'eos-in-question', 'trailing-question'])
def test_answers_stay_supervised_where_official_zeroes_them(
        name, turns, answers, llama_tokenizer):
    record = {'id': 'odd', 'conversations': turns}
    _, ref_labels, mismatch = ref_training(name, record, llama_tokenizer)
    assert mismatch and set(ref_labels) == {REF_IGNORE_INDEX}
    ids, labels = tokenize_conversation(turns, get_template(name),
                                        llama_tokenizer, has_image=False)
    assert [run.strip() for run in supervised_runs(ids, labels,
                                                   llama_tokenizer)] == \
        [answer.strip() for answer in answers]


@pytest.mark.parametrize('name', NAMES)
def test_special_strings_in_messages_stay_text(name, llama_tokenizer):
    turns = [{'from': 'human', 'value': 'What do </s> and <s> mean?'},
             {'from': 'gpt', 'value': 'Write </s> at the end.'}]
    ids, labels = tokenize_conversation(turns, get_template(name),
                                        llama_tokenizer, has_image=False)
    assert ids.count(llama_tokenizer.eos_token_id) == 1
    assert ids.count(llama_tokenizer.bos_token_id) == 1
    assert labels[-1] == llama_tokenizer.eos_token_id
    official, _ = tokenize_conversation(
        turns, get_template(name), llama_tokenizer, has_image=False,
        special_tokens_in_content='special')
    assert official == ref_training(name, {'conversations': turns},
                                    llama_tokenizer)[0]
    # The question's, the answer's and the template's.
    assert official.count(llama_tokenizer.eos_token_id) == 3


def test_the_mistral_recipe_sets_the_template_on_model_and_pipeline():
    from pathlib import Path

    from mmengine.config import Config
    root = Path(__file__).resolve().parents[1]
    cfg = Config.fromfile(
        str(root / 'configs/llava/llava-next-mistral-7b_ft.py'))
    steps = {step['type']: step
             for step in cfg.train_dataloader.dataset.pipeline}
    assert cfg.model.template == 'mistral_instruct'
    assert steps['TokenizeConversation']['template'] == 'mistral_instruct'
    assert steps['TokenizeConversation']['tokenizer'] == cfg.model.tokenizer
    assert cfg.model.llm.pretrained == cfg.model.tokenizer.pretrained
    stage1 = Config.fromfile(
        str(root / 'configs/llava/llava-next-mistral-7b_pretrain.py'))
    assert stage1.model.template == 'plain'
    assert stage1.model.llm.pretrained == cfg.model.llm.pretrained
