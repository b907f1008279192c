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
    with pytest.raises(ValueError, match='2 prompts given for 3 images'):
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
