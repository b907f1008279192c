"""Caption an image or answer a question about it, as the recipe's config
says (``inference = dict(task=...)``)."""
from os import PathLike
from typing import Sequence, Union

from mmengine.config import Config

from mmllava.apis.generation import (SampleImages, count_images, generate,
                                     with_placeholders)
from mmllava.apis.get_model import get_model
from mmllava.model_index import TASKS

#: The key of the result of each task.
RESULT_KEYS = dict(caption='pred_caption', vqa='pred_answer')


def build_prompts(inference_cfg: dict, prompt: Union[str, Sequence[str], None],
                  num_samples: int) -> list[str]:
    """One prompt per sample, as the task defines it.

    Captioning defaults to the config's ``prompt``; a question (required) gets
    the config's ``prompt_suffix``.
    """
    unknown = set(inference_cfg) - {'task', 'prompt', 'prompt_suffix'}
    if unknown:
        raise KeyError(f'Unknown keys in the config\'s inference dict: '
                       f'{sorted(unknown)} (known: task, prompt, '
                       'prompt_suffix).')
    task = inference_cfg.get('task')
    if task not in TASKS:
        raise ValueError(f'inference.task must be one of {TASKS}, got '
                         f'{task!r}.')
    if prompt is None:
        if task == 'vqa':
            raise ValueError('A VQA model needs a question: '
                             'inference_model(model, image, prompt=...).')
        prompt = inference_cfg['prompt']
    prompts = [prompt] * num_samples if isinstance(prompt, str) \
        else list(prompt)
    if len(prompts) != num_samples:
        raise ValueError(f'{len(prompts)} prompts given for {num_samples} '
                         'samples; give one prompt, or one per sample (an '
                         'image or a list of images each).')
    if task == 'vqa':
        prompts = [text + inference_cfg.get('prompt_suffix', '')
                   for text in prompts]
    return prompts


def inference_model(model, image: Union[SampleImages, list[SampleImages]],
                    prompt: Union[str, Sequence[str], None] = None,
                    **generation_kwargs) -> Union[dict, list[dict]]:
    """Caption images or answer questions about them, as mmpretrain's
    ``inference_model``.

    A list runs as one batch; each answer is the one its sample gets alone.
    A sample may have several images (LLaVA-NeXT-Interleave): give them as a
    list inside the batch's list (``[['a.jpg', 'b.jpg']]``), or as a tuple
    for one sample on its own (``('a.jpg', 'b.jpg')``).

    Args:
        model (LLaVA | str | PathLike | Config): Built by :func:`get_model`,
            or what :func:`get_model` builds from (a name, a config), as
            mmpretrain takes it; its config's ``inference``
            (``dict(task='caption', prompt=...)`` or ``dict(task='vqa',
            prompt_suffix=...)``) and ``test_pipeline`` are used.
        image (str | PathLike | PIL.Image | np.ndarray | tuple | list): A
            file, an image in memory (uint8 array), or a tuple of those (one
            sample with several images); or a list of samples, each of those
            or a list of its images.
        prompt (str | list[str], optional): The question (VQA, required) or
            the captioning prompt (defaults to the config's); a list gives
            one per sample. A prompt without ``<image>`` gets one
            ``<image>\\n`` per image before it; one that holds them (one
            per image) places the images where they stand, e.g. ``'Is
            <image> brighter than <image>?'``.
        **generation_kwargs: Override the model's ``generation_cfg``, e.g.
            ``max_new_tokens=16``; with a name or config, ``pretrained``,
            ``device``, ``device_map`` and ``vision_tower`` go to
            :func:`get_model` (as mmpretrain's ``inference_model`` passes
            them to its inferencer).

    Returns:
        dict | list[dict]: ``{'pred_caption': str}`` or ``{'pred_answer':
        str}``; a list of them for a list of samples.

    Examples:
        >>> model = get_model('llava-tiny_demo_vqa',
        ...                   pretrained='work_dirs/llava-tiny_demo_ft')
        >>> image = 'data/demo/images/eval_00000.png'
        >>> inference_model(model, image, 'Where is the blue triangle?')
        {'pred_answer': 'Bottom right'}
        >>> inference_model(model, [image, image], ['Where is the blue '
        ...                 'triangle?', 'Is the blue triangle large or small?'])
        [{'pred_answer': 'Bottom right'}, {'pred_answer': 'Large'}]
        >>> other = 'data/demo/images/eval_00001.png'
        >>> inference_model(model, [[image, other], image],
        ...                 ['<image> or <image>: which has a circle?',
        ...                  'What is in the image?'])
        [{'pred_answer': ...}, {'pred_answer': ...}]
    """
    if isinstance(model, (str, PathLike, Config)):
        build_args = ('pretrained', 'device', 'device_map', 'vision_tower')
        model = get_model(model, **{
            key: generation_kwargs.pop(key) for key in build_args
            if key in generation_kwargs})
    cfg = getattr(model, 'cfg', None)
    if cfg is None or 'inference' not in cfg:
        raise KeyError(
            'The model config has no `inference` dict (task and prompt); '
            'use a recipe from list_models() or add inference=dict(...).')
    samples = image if isinstance(image, list) else [image]
    if isinstance(prompt, list) and not isinstance(image, list):
        raise ValueError('A list of prompts needs a list of images.')
    prompts = build_prompts(cfg.inference, prompt, len(samples))
    conversations = [
        [{'from': 'human',
          'value': with_placeholders(text, count_images(sample),
                                     f'Prompt {index}')}]
        for index, (text, sample) in enumerate(zip(prompts, samples))]
    answers = generate(model, conversations, samples, **generation_kwargs)
    key = RESULT_KEYS[cfg.inference.task]
    results = [{key: answer} for answer in answers]
    return results if isinstance(image, list) else results[0]
