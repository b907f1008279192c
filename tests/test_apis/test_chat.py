"""``mmllava/apis/chat.py``: multi-turn history and streamed answers."""
import pytest
import torch
from transformers import TextIteratorStreamer

from mmllava.apis import ChatSession
from mmllava.apis.chat import AnswerStreamer
from mmllava.constants import IMAGE_TOKEN_INDEX

pytestmark = pytest.mark.usefixtures('one_thread', 'in_workspace')


def record_prompts(model, monkeypatch) -> list[list[int]]:
    """The prompt ids of every ``generate_answers`` call."""
    prompts = []
    original = model.generate_answers

    def spy(input_ids, attention_mask, *args, **kwargs):
        prompts.append(input_ids[0][attention_mask[0].bool()].tolist())
        return original(input_ids, attention_mask, *args, **kwargs)

    monkeypatch.setattr(model, 'generate_answers', spy)
    return prompts


def contains(sequence: list[int], part: list[int]) -> bool:
    return any(sequence[start:start + len(part)] == part
               for start in range(len(sequence) - len(part) + 1))


def test_the_next_turn_sees_the_answer(vqa_model, monkeypatch):
    prompts = record_prompts(vqa_model, monkeypatch)
    session = ChatSession(vqa_model, 'astronaut.png')
    first = session.ask('What is in the image?')
    second = session.ask('Tell me more.')
    assert first and second
    assert session.history == [
        {'from': 'human', 'value': '<image>\nWhat is in the image?'},
        {'from': 'gpt', 'value': first},
        {'from': 'human', 'value': 'Tell me more.'},
        {'from': 'gpt', 'value': second},
    ]
    # One image, given with the first question.
    assert [prompt.count(IMAGE_TOKEN_INDEX) for prompt in prompts] == [1, 1]
    assert prompts[1][:len(prompts[0])] == prompts[0]
    answer_ids = vqa_model.tokenizer(first, add_special_tokens=False).input_ids
    assert contains(prompts[1][len(prompts[0]):], answer_ids)
    assert prompts[1][len(prompts[0]) + len(answer_ids)] == \
        vqa_model.tokenizer.eos_token_id


def test_streamed_pieces_join_to_the_answer(vqa_model):
    session = ChatSession(vqa_model, 'chelsea.png')
    for question in ('Describe the image.', 'And the colours?'):
        pieces = []
        answer = session.ask(question, streamer=pieces.append,
                             max_new_tokens=12)
        assert len(pieces) > 1, 'nothing was streamed before the end'
        assert ''.join(pieces) == answer


def test_a_transformers_streamer_is_passed_through(vqa_model):
    session = ChatSession(vqa_model, 'chelsea.png')
    streamer = TextIteratorStreamer(vqa_model.tokenizer, skip_prompt=True,
                                    skip_special_tokens=True)
    answer = session.ask('Describe the image.', streamer=streamer)
    assert ''.join(streamer).strip() == answer


def test_reset_starts_a_new_conversation(vqa_model, monkeypatch):
    session = ChatSession(vqa_model, 'astronaut.png')
    session.ask('What is in the image?')
    session.reset('rocket.png')
    assert session.history == [] and session.images == ['rocket.png']
    assert session.ask('What is this?') == ChatSession(
        vqa_model, 'rocket.png').ask('What is this?')
    session.reset()
    prompts = record_prompts(vqa_model, monkeypatch)
    session.ask('Hello?')
    assert IMAGE_TOKEN_INDEX not in prompts[0]
    assert session.history[0] == {'from': 'human', 'value': 'Hello?'}


def test_several_images_go_with_the_first_question(vqa_model, monkeypatch):
    prompts = record_prompts(vqa_model, monkeypatch)
    session = ChatSession(vqa_model, ['astronaut.png', 'coffee.png'])
    first = session.ask('What differs?')
    session.ask('Which is brighter?')
    assert session.history[0] == {
        'from': 'human', 'value': '<image>\n<image>\nWhat differs?'}
    assert session.history[2] == {'from': 'human',
                                  'value': 'Which is brighter?'}
    assert [prompt.count(IMAGE_TOKEN_INDEX) for prompt in prompts] == [2, 2]
    # Placeholders in the question place the images.
    placed = ChatSession(vqa_model, ('astronaut.png', 'coffee.png'))
    placed.ask('Is <image> larger than <image>?')
    assert placed.history[0]['value'] == 'Is <image> larger than <image>?'
    with pytest.raises(ValueError, match='The question holds 1 <image> for '
                       '2 images'):
        ChatSession(vqa_model, ['astronaut.png', 'coffee.png']).ask(
            'What is <image>?')
    session.reset(session.images)
    assert session.ask('What differs?') == first


def test_an_added_image_goes_with_the_next_question(vqa_model, monkeypatch):
    prompts = record_prompts(vqa_model, monkeypatch)
    session = ChatSession(vqa_model, 'astronaut.png')
    session.ask('What is this?')
    session.add_image('coffee.png')
    session.ask('And this one?')
    assert session.images == ['astronaut.png', 'coffee.png']
    assert [turn['value'] for turn in session.history[::2]] == [
        '<image>\nWhat is this?', '<image>\nAnd this one?']
    assert [prompt.count(IMAGE_TOKEN_INDEX) for prompt in prompts] == [1, 2]
    # The first turn's prompt is unchanged by the second image.
    assert prompts[1][:len(prompts[0])] == prompts[0]
    # A conversation without an image may add one.
    text_first = ChatSession(vqa_model)
    text_first.ask('Hello?')
    text_first.add_image('chelsea.png')
    text_first.ask('What is in it?')
    assert prompts[2].count(IMAGE_TOKEN_INDEX) == 0
    assert prompts[3].count(IMAGE_TOKEN_INDEX) == 1


def test_an_empty_answer_is_not_kept(vqa_model, monkeypatch):
    monkeypatch.setattr(vqa_model, 'generate_answers',
                        lambda *args, **kwargs: [''])
    session = ChatSession(vqa_model, 'astronaut.png')
    assert session.ask('Anything?') == ''
    assert session.history == []


TEXT = ' A red circle.\nUSER: more</s>'


class CharTokenizer:
    """Id ``i`` decodes to character ``i`` of :data:`TEXT`."""

    def decode(self, ids, skip_special_tokens=True):
        return ''.join(TEXT[i] for i in ids)


@pytest.mark.parametrize('stop', ['</s>', '\n', '\nUSER: ', 'd c'])
def test_answer_streamer_sends_only_final_text(stop):
    """Every piece sent is final: a prefix of the answer without a partial
    word, trailing whitespace or the start of the stop text."""
    expected = TEXT.lstrip().split(stop)[0].strip()
    pieces = []
    streamer = AnswerStreamer(CharTokenizer(), stop, pieces.append)
    streamer.put(torch.empty(1, 0, dtype=torch.long))  # the prompt
    for index in range(len(TEXT)):
        streamer.put(torch.tensor([index]))
        sent = ''.join(pieces)
        assert expected.startswith(sent) and sent == sent.rstrip()
    streamer.end()
    assert ''.join(pieces) == expected
    assert len(pieces) > 1
