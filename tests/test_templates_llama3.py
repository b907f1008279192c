"""``llava_llama_3`` (``mmllava/templates/llama3.py``,
``mmllava/conversation_llama3.py``) against LLaVA-NeXT.

The references below restate, without importing anything from ``mmllava``,
what LLaVA-NeXT (LLaVA-VL/LLaVA-NeXT) does for ``--version llava_llama_3``:

- training: ``preprocess_multimodal`` then ``preprocess_llama3`` of
  ``llava/train/train.py`` (the system message and every turn through the
  tokenizer's chat template on their own, framing tokens unmasked);
- inference: ``conv_llava_llama_3.get_prompt()`` (the chat template with a
  generation prompt) tokenized by ``tokenizer_image_token``.

No Llama-3 tokenizer ships in a wheel, so the test trains a byte-level BPE
with Llama-3's pre-tokenizer split, its special tokens, its BOS post-processor
and Meta-Llama-3-8B-Instruct's chat template.
"""
import copy
import random
import re

import pytest
from tokenizers import (Regex, Tokenizer, models, pre_tokenizers, processors,
                        trainers, decoders)
from transformers import PreTrainedTokenizerFast

from mmllava.conversation import (build_generation_prompt,
                                  tokenize_conversation)
from mmllava.templates import get_template

REF_IGNORE_INDEX = -100
REF_IMAGE_TOKEN_INDEX = -200
REF_IMAGE = '<image>'
REF_SYSTEM = (
    'You are a helpful language and vision assistant. You are able to '
    'understand the visual content that the user provides, and assist the '
    'user with a variety of tasks using natural language.')
#: Meta-Llama-3-8B-Instruct's ``chat_template``.
LLAMA_3_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
#: Llama-3's pre-tokenizer split pattern (tiktoken's cl100k).
LLAMA_3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?"
    r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ['<|begin_of_text|>', '<|end_of_text|>', '<|start_header_id|>',
            '<|end_header_id|>', '<|eot_id|>']


def build_llama3_tokenizer():
    from pydoc_data.topics import topics
    text = '\n\n'.join(topics[key] for key in sorted(topics))[:300_000]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA_3_SPLIT_PATTERN),
                             behavior='isolated'),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([text], trainers.BpeTrainer(
        vocab_size=3000, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.add_special_tokens(SPECIALS)
    bos = bpe.token_to_id('<|begin_of_text|>')
    bpe.post_processor = processors.TemplateProcessing(
        single='<|begin_of_text|> $A',
        pair='<|begin_of_text|> $A <|begin_of_text|> $B',
        special_tokens=[('<|begin_of_text|>', bos)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token='<|begin_of_text|>',
        eos_token='<|eot_id|>')
    tokenizer.chat_template = LLAMA_3_CHAT_TEMPLATE
    return tokenizer


# ---------------------------------------------------------------------------
# The official references.
# ---------------------------------------------------------------------------
def ref_preprocess_multimodal(turns):
    """LLaVA-NeXT's: a message with one ``<image>``, not at its front, gets
    it moved there."""
    for turn in turns:
        value = turn['value']
        if len(re.findall(REF_IMAGE, value)) == 1 and \
                not value.startswith(REF_IMAGE):
            value = value.replace(REF_IMAGE, '').strip()
            turn['value'] = (REF_IMAGE + '\n' + value).strip()
    return turns


def ref_chat_ids(tokenizer, messages):
    """``tokenizer.apply_chat_template(messages)`` as the official code
    calls it (transformers 5 returns a dict unless told not to)."""
    return tokenizer.apply_chat_template(messages, return_dict=False)


def ref_preprocess_llama3(turns, tokenizer, has_image):
    """``preprocess_llama3`` for one conversation: ``(ids, labels)``."""
    roles = {'human': 'user', 'gpt': 'assistant'}
    tokenizer = copy.deepcopy(tokenizer)
    if has_image:
        tokenizer.add_tokens(['<image>'], special_tokens=True)
    image_token_index = tokenizer.convert_tokens_to_ids('<image>')
    unmask = [tokenizer.convert_tokens_to_ids(token) for token in [
        '<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>',
        '<|eot_id|>', '\n\n']]
    if roles[turns[0]['from']] != 'user':
        turns = turns[1:]
    input_id = ref_chat_ids(tokenizer,
                            [{'role': 'system', 'content': REF_SYSTEM}])
    target = [REF_IGNORE_INDEX] * len(input_id)
    for turn in turns:
        role = roles[turn['from']]
        encode_id = ref_chat_ids(
            tokenizer, [{'role': role, 'content': turn['value']}])[1:]
        input_id += encode_id
        target += [REF_IGNORE_INDEX] * len(encode_id) if role == 'user' \
            else encode_id
    for idx, encode_id in enumerate(input_id):
        if encode_id in unmask:
            target[idx] = encode_id
        if encode_id == image_token_index:
            input_id[idx] = REF_IMAGE_TOKEN_INDEX
    return input_id, target


def ref_training(record, tokenizer):
    turns = copy.deepcopy(record['conversations'])
    has_image = 'image' in record
    if has_image:
        turns = ref_preprocess_multimodal(turns)
    return ref_preprocess_llama3(turns, tokenizer, has_image)


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


def ref_inference_ids(messages, tokenizer):
    """``conv_llava_llama_3.get_prompt()`` through ``tokenizer_image_token``,
    messages alternating user and assistant."""
    chat = [{'role': 'system', 'content': REF_SYSTEM}] + [
        {'role': ('user', 'assistant')[i % 2], 'content': message}
        for i, message in enumerate(messages)]
    prompt = tokenizer.apply_chat_template(chat, tokenize=False,
                                           add_generation_prompt=True)
    return ref_tokenizer_image_token(prompt, tokenizer)


# ---------------------------------------------------------------------------
# Fixtures and comparison.
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def llama3_tokenizer():
    tokenizer = build_llama3_tokenizer()
    assert tokenizer('hi').input_ids[0] == tokenizer.bos_token_id
    # As in Llama-3: "\n\n" is no token name, so the official unmask list's
    # last entry finds nothing.
    assert tokenizer.convert_tokens_to_ids('\n\n') is None
    assert tokenizer.convert_ids_to_tokens(
        tokenizer(' the\n\n', add_special_tokens=False).input_ids) == \
        ['Ġthe', 'ĊĊ']
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


def assert_matches_official(record, tokenizer, **kwargs):
    official = ref_training(record, tokenizer)
    ours = tokenize_conversation(
        record['conversations'], get_template('llava_llama_3'), tokenizer,
        has_image='image' in record, sample_id=record.get('id'), **kwargs)
    assert ours == official, (
        f'record {record!r}\n{describe(ours, official, tokenizer)}')
    assert sum(label != REF_IGNORE_INDEX for label in ours[1]) > \
        4 * len(record['conversations'])
    return ours


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
    {'id': 'i6IyJda_0', 'conversations': [
        {'from': 'human', 'value': 'How do I reverse a list in Python?'},
        {'from': 'gpt', 'value': 'Use slicing: `items[::-1]`.\n'},
        {'from': 'human', 'value': ' And in place? '},
        {'from': 'gpt', 'value': '`items.reverse()` reverses it in place.'}]},
]

WORDS = ['the', 'The', 'cat', 'user', 'assistant', 'system', 'image',
         'Hello', "don't", "'s", '12', '3.14', '1234567', '!', '?', ',', ':',
         '(', '"', '#', '`code`', '<b>', 'naïve', '日本語', '😀', 'é',
         '\u00a0']
JOINERS = ['', ' ', ' ', '  ', '\n', '\n\n', '\t']


def random_text(rng):
    parts = [rng.choice(WORDS) for _ in range(rng.randint(1, 10))]
    text = parts[0]
    for part in parts[1:]:
        text += rng.choice(JOINERS) + part
    if rng.random() < 0.3:
        text = rng.choice([' ', '\n', '  ', '\t']) + text
    if rng.random() < 0.3:
        text += rng.choice([' ', '\n', '\n\n'])
    return text


def random_cases(seed=20240510, num=80):
    rng = random.Random(seed)
    cases = []
    for index in range(num):
        turns = []
        for _ in range(rng.randint(1, 3)):
            turns += [{'from': 'human', 'value': random_text(rng)},
                      {'from': 'gpt', 'value': random_text(rng)}]
        record = {'id': f'llava_llama_3-{index}', 'conversations': turns}
        if rng.random() < 0.7:
            record['image'] = f'{index}.jpg'
            turn = turns[2 * rng.randrange(len(turns) // 2)]
            turn['value'] = rng.choice([
                REF_IMAGE + '\n' + turn['value'], REF_IMAGE + turn['value'],
                turn['value'] + REF_IMAGE, turn['value'] + '\n' + REF_IMAGE,
                REF_IMAGE])
        cases.append(record)
    return cases


@pytest.mark.parametrize('record', RECORDS + random_cases(),
                         ids=lambda r: r['id'])
def test_matches_official(record, llama3_tokenizer):
    assert_matches_official(record, llama3_tokenizer)


def test_framing_tokens_are_learnt_everywhere(llama3_tokenizer):
    ids, labels = assert_matches_official(RECORDS[0], llama3_tokenizer)
    framing = llama3_tokenizer.convert_tokens_to_ids(SPECIALS)
    assert ids[0] == labels[0] == llama3_tokenizer.bos_token_id
    for token, label in zip(ids, labels):
        if token in framing:
            assert label == token


@pytest.mark.parametrize('messages', [
    ['<image>\nWhat is in the photo?'],
    ['<image>\nWhat color is the bus?', 'Red and white.',
     'Where is it going? ']], ids=['one-question', 'multi-turn'])
def test_generation_prompt_is_official_with_one_bos(messages,
                                                    llama3_tokenizer):
    turns = [{'from': 'human' if i % 2 == 0 else 'gpt', 'value': message}
             for i, message in enumerate(messages)]
    ids = build_generation_prompt(turns, get_template('llava_llama_3'),
                                  llama3_tokenizer, has_image=True)
    official = ref_inference_ids(messages, llama3_tokenizer)
    bos = llama3_tokenizer.bos_token_id
    # The official prompt has two BOS: the chat template's and the
    # tokenizer's; ours has one, as its training samples do.
    assert official[:2] == [bos, bos]
    assert ids == official[1:]


def test_generation_prompt_is_the_training_prompt_up_to_the_answer(
        llama3_tokenizer):
    record = RECORDS[0]
    template = get_template('llava_llama_3')
    ids, _ = tokenize_conversation(record['conversations'], template,
                                   llama3_tokenizer, has_image=True)
    prompt = build_generation_prompt(record['conversations'][:1], template,
                                     llama3_tokenizer, has_image=True)
    assert ids[:len(prompt)] == prompt


def test_special_strings_in_messages_stay_text(llama3_tokenizer):
    turns = [{'from': 'human', 'value': 'Say <|eot_id|> please.'},
             {'from': 'gpt', 'value':
              'Here: <|eot_id|><|start_header_id|>user'}]
    record = {'id': 'specials', 'conversations': turns}
    eot = llama3_tokenizer.convert_tokens_to_ids('<|eot_id|>')
    ids, labels = tokenize_conversation(
        turns, get_template('llava_llama_3'), llama3_tokenizer,
        has_image=False)
    assert ids.count(eot) == 3
    assert labels[-1] == eot
    official = assert_matches_official(record, llama3_tokenizer,
                                       special_tokens_in_content='special')
    assert official[0].count(eot) == 5


def test_a_tokenizer_without_llama3_tokens_is_refused(tokenizer):
    with pytest.raises(ValueError, match='Llama-3 tokenizer'):
        tokenize_conversation(RECORDS[2]['conversations'],
                              get_template('llava_llama_3'), tokenizer,
                              has_image=False)
