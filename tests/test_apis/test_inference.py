"""``mmllava/apis/inference.py``: captions and answers from paths, PIL
images and arrays, one or a batch at a time."""
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image
from skimage import data as photos

from mmllava.apis import inference_model
from mmllava.apis.generation import build_test_pipeline
from mmllava.apis.inference import build_prompts
from mmllava.constants import IMAGE_TOKEN_INDEX

pytestmark = pytest.mark.usefixtures('one_thread', 'in_workspace')

QUESTION = 'What is in the image?'


def test_vqa_returns_an_answer(vqa_model):
    result = inference_model(vqa_model, 'astronaut.png', QUESTION)
    assert list(result) == ['pred_answer']
    assert isinstance(result['pred_answer'], str) and result['pred_answer']


def test_vqa_needs_a_question(vqa_model):
    with pytest.raises(ValueError, match='needs a question'):
        inference_model(vqa_model, 'astronaut.png')


def test_caption_defaults_to_the_config_prompt(caption_model):
    result = inference_model(caption_model, 'coffee.png')
    assert list(result) == ['pred_caption']
    prompt = caption_model.cfg.inference.prompt
    assert result == inference_model(caption_model, 'coffee.png', prompt)


def test_prompts_follow_the_evaluation_datasets(vqa_model, monkeypatch):
    """``<image>\\n`` + question + the config's suffix, as the VQA test sets
    build them."""
    seen = []
    original = vqa_model.generate_answers

    def spy(input_ids, *args, **kwargs):
        seen.append(input_ids)
        return original(input_ids, *args, **kwargs)

    monkeypatch.setattr(vqa_model, 'generate_answers', spy)
    inference_model(vqa_model, 'astronaut.png', QUESTION)
    pipeline = build_test_pipeline(vqa_model)
    expected = pipeline(dict(img_path='astronaut.png', conversations=[{
        'from': 'human',
        'value': '<image>\n' + QUESTION + vqa_model.cfg.inference.prompt_suffix
    }]))['inputs']['input_ids']
    assert seen[0][0].tolist() == expected.tolist()


def test_path_pil_and_array_give_the_same_answer(vqa_model):
    answers = [
        inference_model(vqa_model, image, QUESTION)
        for image in ('rocket.png', Image.open('rocket.png'),
                      photos.rocket())
    ]
    assert answers[0] == answers[1] == answers[2]


def test_grey_and_rgba_arrays_are_accepted(vqa_model):
    grey = photos.camera()
    rgba = np.dstack([photos.chelsea(), np.full(photos.chelsea().shape[:2],
                                                255, np.uint8)])
    assert inference_model(vqa_model, rgba, QUESTION) == inference_model(
        vqa_model, photos.chelsea(), QUESTION)
    assert 'pred_answer' in inference_model(vqa_model, grey, QUESTION)


def test_a_batch_answers_as_each_image_alone(vqa_model):
    """Different image sizes and prompt lengths in one batch."""
    images = ['astronaut.png', photos.coffee(), Image.open('chelsea.png')]
    questions = ['What is this?',
                 'Describe every object in this picture in detail.',
                 'Is there a cat?']
    batched = inference_model(vqa_model, images, questions)
    assert batched == [inference_model(vqa_model, image, question)
                       for image, question in zip(images, questions)]
    # One prompt for all images.
    assert inference_model(vqa_model, images[:2], QUESTION) == [
        inference_model(vqa_model, image, QUESTION) for image in images[:2]]


def test_several_images_per_sample(vqa_model, monkeypatch):
    """A list inside the batch is one sample's images; a tuple is one
    sample alone. Placeholders in the prompt place the images, one per
    image; without any, each image goes first on a line of its own."""
    seen = []
    original = vqa_model.generate_answers

    def spy(input_ids, attention_mask, *args, **kwargs):
        seen.append([ids[mask.bool()].tolist()
                     for ids, mask in zip(input_ids, attention_mask)])
        return original(input_ids, attention_mask, *args, **kwargs)

    monkeypatch.setattr(vqa_model, 'generate_answers', spy)
    pair = ['astronaut.png', photos.coffee()]
    question = 'Is <image> brighter than <image>?'
    batched = inference_model(vqa_model, [pair, 'chelsea.png'],
                              [question, QUESTION])
    alone = inference_model(vqa_model, tuple(pair), question)
    assert batched[0] == alone
    assert batched[1] == inference_model(vqa_model, 'chelsea.png', QUESTION)
    assert [ids.count(IMAGE_TOKEN_INDEX) for ids in seen[0]] == [2, 1]
    suffix = vqa_model.cfg.inference.prompt_suffix
    pipeline = build_test_pipeline(vqa_model)

    def prompt_ids(value):
        return pipeline(dict(
            img_path=['astronaut.png', 'coffee.png'],
            conversations=[{'from': 'human', 'value': value}])
        )['inputs']['input_ids'].tolist()

    assert seen[1][0] == prompt_ids(question + suffix)
    inference_model(vqa_model, tuple(pair), QUESTION)
    assert seen[-1][0] == prompt_ids(f'<image>\n<image>\n{QUESTION}{suffix}')


def test_several_images_need_as_many_placeholders(vqa_model):
    with pytest.raises(ValueError, match=r'Prompt 1 holds 1 <image> for 2 '
                       'images'):
        inference_model(vqa_model, ['astronaut.png', ('astronaut.png',
                                                      'coffee.png')],
                        [QUESTION, 'What is <image>?'])


def test_generation_kwargs_override_the_config(vqa_model, monkeypatch):
    seen = []
    original = vqa_model.llm.generate

    def spy(**kwargs):
        seen.append(kwargs['max_new_tokens'])
        return original(**kwargs)

    monkeypatch.setattr(vqa_model.llm, 'generate', spy)
    short = inference_model(vqa_model, 'astronaut.png', QUESTION,
                            max_new_tokens=2)['pred_answer']
    full = inference_model(vqa_model, 'astronaut.png', QUESTION)
    assert seen == [2, vqa_model.generation_cfg['max_new_tokens']]
    assert full['pred_answer'].startswith(short)


def test_prompt_and_image_counts_must_agree(vqa_model):
    with pytest.raises(ValueError, match='2 prompts given for 3 samples'):
        inference_model(vqa_model, ['a.png', 'b.png', 'c.png'], ['q', 'q'])
    with pytest.raises(ValueError, match='list of prompts needs a list'):
        inference_model(vqa_model, 'astronaut.png', ['q', 'q'])


def test_bad_images_fail_clearly(vqa_model):
    with pytest.raises(OSError, match='no_such_image.png'):
        inference_model(vqa_model, 'no_such_image.png', QUESTION)
    with pytest.raises(ValueError, match='uint8'):
        inference_model(vqa_model, photos.rocket().astype(np.float32),
                        QUESTION)


def test_config_without_inference_fails(vqa_model, monkeypatch):
    cfg = Config({key: value for key, value in vqa_model.cfg.items()
                  if key != 'inference'})
    monkeypatch.setattr(vqa_model, 'cfg', cfg)
    with pytest.raises(KeyError, match='no `inference`'):
        inference_model(vqa_model, 'astronaut.png', QUESTION)


def test_build_prompts_checks_the_inference_config():
    caption = dict(task='caption', prompt='Describe it.')
    assert build_prompts(caption, None, 2) == ['Describe it.'] * 2
    vqa = dict(task='vqa', prompt_suffix='\nShort answer.')
    assert build_prompts(vqa, ['a?', 'b?'], 2) == ['a?\nShort answer.',
                                                  'b?\nShort answer.']
    with pytest.raises(ValueError, match="got 'retrieval'"):
        build_prompts(dict(task='retrieval'), 'q', 1)
    with pytest.raises(KeyError, match='promt'):
        build_prompts(dict(task='caption', promt='typo'), None, 1)
