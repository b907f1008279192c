"""Log the model's answers to a few fixed questions while it trains."""
from typing import Optional, Sequence

import torch
from mmengine.dataset import Compose
from mmengine.hooks import Hook

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.models.answering import answer_samples
from mmllava.registry import HOOKS, TRANSFORMS

DATA_BATCH = Optional[dict]


@HOOKS.register_module()
class SampleAnswersHook(Hook):
    """Every ``interval`` iterations, answer fixed image + question pairs and
    write the answers to the log, so a run shows what the model has learned.

    The model is put in eval mode for the answers and back in train mode
    after them; its weights and the training RNG are untouched (generation
    is greedy by default).

    Args:
        samples (Sequence[dict]): Each ``dict(image=PATH, question=TEXT)``;
            ``image`` may be None for a text-only question.
        pipeline (Sequence[dict]): The test pipeline (``LoadImage`` ...
            ``TokenizeConversation(mode='predict')`` ... ``PackLLaVAInputs``).
        interval (int): Iterations between answers. Defaults to 500.
        max_new_tokens (int): Longest answer. Defaults to 32.
        at_start (bool): Also answer before the first iteration (the
            untrained baseline). Defaults to True.
    """

    priority = 'LOW'

    def __init__(self,
                 samples: Sequence[dict],
                 pipeline: Sequence[dict],
                 interval: int = 500,
                 max_new_tokens: int = 32,
                 at_start: bool = True) -> None:
        if not samples:
            raise ValueError('SampleAnswersHook needs at least one sample.')
        for index, sample in enumerate(samples):
            if not isinstance(sample, dict) or not isinstance(
                    sample.get('question'), str):
                raise ValueError(f'SampleAnswersHook sample {index} must be '
                                 'dict(image=PATH or None, question=TEXT), '
                                 f'got {sample!r}')
        self.samples = list(samples)
        self.pipeline = Compose([TRANSFORMS.build(step) for step in pipeline])
        self.interval = interval
        self.max_new_tokens = max_new_tokens
        self.at_start = at_start

    def before_train(self, runner) -> None:
        if self.at_start:
            self._log_answers(runner, iterations_done=0)

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            # runner.iter counts this iteration only after the hooks ran.
            self._log_answers(runner, iterations_done=runner.iter + 1)

    def _samples(self) -> list[dict]:
        items = []
        for index, sample in enumerate(self.samples):
            image = sample.get('image')
            question = sample['question']
            if image is not None and IMAGE_PLACEHOLDER not in question:
                question = f'{IMAGE_PLACEHOLDER}\n{question}'
            items.append(self.pipeline(dict(
                sample_id=f'sample_answers_{index}', img_path=image,
                conversations=[{'from': 'human', 'value': question}])))
        return items

    def _log_answers(self, runner, iterations_done: int) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        was_training = model.training
        model.eval()
        with torch.no_grad():
            answers = answer_samples(model, self._samples(),
                                     max_new_tokens=self.max_new_tokens,
                                     warn_when_cut=False)
        model.train(was_training)
        lines = [f'Sample answers after {iterations_done} iterations:']
        for sample, answer in zip(self.samples, answers):
            cut = f' [cut at max_new_tokens={self.max_new_tokens}]' \
                if answer.cut else ''
            lines.append(f'  [{sample.get("image")}] Q: {sample["question"]}'
                         f'\n    A: {answer}{cut}')
        runner.logger.info('\n'.join(lines))
