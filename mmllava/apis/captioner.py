"""A captioning LLaVA model as the local captioner of
:func:`mmllava.datagen.captioning.caption_with_model`."""
from mmllava.apis.inference import inference_model
from mmllava.datagen.captioning import CaptionBatch


def batch_captioner(model, **generation_kwargs) -> CaptionBatch:
    """``model`` as a function of image paths and a prompt that gives one
    caption per path, through :func:`inference_model`.

    Args:
        model (LLaVA): A model from :func:`mmllava.apis.get_model` whose
            config's ``inference.task`` is ``'caption'``.
        **generation_kwargs: Override the model's ``generation_cfg``, e.g.
            ``max_new_tokens=256``.

    Raises:
        ValueError: The config is not a captioning one (a VQA config would
            append its short-answer suffix to the prompt).
    """
    task = model.cfg.get('inference', {}).get('task')
    if task != 'caption':
        raise ValueError(
            f'{model.cfg.filename}: a captioning config is needed '
            f"(inference.task='caption'), got task {task!r}; load the "
            'checkpoint into a caption config such as '
            'llava-tiny_demo_caption')

    def caption(paths: list[str], prompt: str) -> list[str]:
        return [result['pred_caption'] for result in
                inference_model(model, paths, prompt, **generation_kwargs)]

    return caption
