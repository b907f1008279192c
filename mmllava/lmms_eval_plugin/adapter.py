"""An mmllava model behind lmms-eval's model interface.

lmms-eval (https://github.com/EvolvingLMMs-Lab/lmms-eval) drives a model
through ``generate_until``, ``loglikelihood`` and
``generate_until_multi_round``, each taking a list of requests whose
``args`` are::

    generate_until:  (context, gen_kwargs, doc_to_visual, doc_id, task, split)
    loglikelihood:   (context, doc_to_target, doc_to_visual, doc_id, task,
                      split)

``doc_to_visual(doc)`` gives the images of the document
``task_dict[task][split][doc_id]``. :class:`LMMSAdapter` answers them with
the same test pipeline and generation as ``tools/test.py``, so a question
asked through lmms-eval gets the answer ``tools/test.py`` gives it. It does
not import lmms-eval; :mod:`mmllava.lmms_eval_plugin` puts it
behind lmms-eval's ``lmms`` base class.
"""
from typing import Optional, Sequence

import torch

from mmllava.constants import IGNORE_INDEX
from mmllava.models.model_inputs import LLaVAInputs
from mmllava.templates import GPT
from mmllava.datasets.question_dataset import human_turn


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """``text`` up to the first stop string it holds."""
    for stop in until:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text


class LMMSAdapter:
    """lmms-eval's three request kinds, answered by an mmllava model.

    Args:
        pretrained (str): An mmllava checkpoint or work dir (anything
            :func:`~mmllava.apis.get_model` takes as ``pretrained``).
        config (str): A model name of the model index or a config file;
            its ``test_pipeline`` renders the prompts.
        device (str, optional): Defaults to cuda when available.
        batch_size (int): Requests answered per batch. Defaults to 1.
        model (optional): An already built model (``get_model``'s), instead
            of ``pretrained`` and ``config``.
    """

    def __init__(self,
                 pretrained: Optional[str] = None,
                 config: Optional[str] = None,
                 device: Optional[str] = None,
                 batch_size: int = 1,
                 model=None) -> None:
        if model is None:
            if not pretrained or not config:
                raise ValueError('the mmllava lmms-eval model needs '
                                 'pretrained=<checkpoint> and config=<model '
                                 'name or config file>')
            from mmllava.apis import get_model
            model = get_model(config, pretrained=pretrained, device=device)
        self.model = model.eval()
        self.batch_size = int(batch_size)
        self.task_dict = getattr(self, 'task_dict', {})

    def _pipeline(self, mode: str):
        from mmengine.dataset import Compose

        from mmllava.registry import TRANSFORMS
        transforms = []
        for step in self.model.cfg.test_pipeline:
            step = dict(step)
            if step['type'] == 'TokenizeConversation':
                step['tokenizer'] = self.model.tokenizer
                step['mode'] = mode
            transforms.append(TRANSFORMS.build(step))
        return Compose(transforms)

    def _image(self, doc_to_visual, doc_id, task, split):
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) \
            if doc_to_visual is not None else []
        visuals = [v for v in (visuals or []) if v is not None]
        if len(visuals) > 1:
            raise ValueError(f'{task}/{split} document {doc_id}: '
                             f'{len(visuals)} images; the model takes one')
        return visuals[0] if visuals else None

    def _sample(self, pipeline, index: int, turns: list, image) -> dict:
        fields = dict(img=image) if image is not None else dict(img_path=None)
        return pipeline(dict(sample_id=index, conversations=turns, **fields))

    @torch.no_grad()
    def generate_until(self, requests) -> list[str]:
        """Greedy answers, cut at ``gen_kwargs['until']``;
        ``max_new_tokens`` as the request says (else the config's)."""
        from mmllava.models.answering import answer_samples
        pipeline = self._pipeline('predict')
        answers = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start:start + self.batch_size]
            samples, kwargs, stops = [], {}, []
            for offset, request in enumerate(chunk):
                context, gen_kwargs, doc_to_visual, doc_id, task, split = \
                    request.args
                gen_kwargs = dict(gen_kwargs or {})
                until = gen_kwargs.get('until') or []
                stops.append([until] if isinstance(until, str) else until)
                if 'max_new_tokens' in gen_kwargs:
                    kwargs['max_new_tokens'] = max(
                        kwargs.get('max_new_tokens', 0),
                        int(gen_kwargs['max_new_tokens']))
                image = self._image(doc_to_visual, doc_id, task, split)
                samples.append(self._sample(
                    pipeline, start + offset,
                    [human_turn(context, image is not None)], image))
            texts = answer_samples(self.model, samples, **kwargs)
            answers += [cut_at_stops(text, until)
                        for text, until in zip(texts, stops)]
        return answers

    @torch.no_grad()
    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """The summed log-probability of each continuation after its
        context (the template's end-of-turn token included: the tokens a
        training label covers), and whether every one of those tokens is
        the model's most likely next token (greedy)."""
        from mmengine.dataset import pseudo_collate
        train = self._pipeline('train')
        model = self.model
        results = []
        for index, request in enumerate(requests):
            context, doc_to_target, doc_to_visual, doc_id, task, split = \
                request.args
            doc = self.task_dict[task][split][doc_id]
            continuation = doc_to_target(doc) if callable(doc_to_target) \
                else doc_to_target
            if isinstance(continuation, list):
                continuation = continuation[0]
            image = self._image(doc_to_visual, doc_id, task, split)
            sample = self._sample(train, index, [
                human_turn(context, image is not None),
                {'from': GPT, 'value': str(continuation)}], image)
            batch = model.data_preprocessor(pseudo_collate([sample]), False)
            # The model's own loss path (as sample_losses), keeping the
            # logits: (1, L) -> (N_supervised, V).
            embeds, mask, labels = model.embed_inputs(
                LLaVAInputs.from_batch(batch), 'right')
            hidden, targets = model._next_token_states(embeds, mask, labels)
            supervised = targets != IGNORE_INDEX
            logits = model.llm.get_output_embeddings()(
                hidden[supervised]).float()
            wanted = targets[supervised]
            logprob = torch.log_softmax(logits, dim=-1).gather(
                1, wanted[:, None]).sum()
            results.append((float(logprob),
                            bool((logits.argmax(dim=-1) == wanted).all())))
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        """Not supported: lmms-eval's multi-round tasks feed the model's
        own earlier answers back, which needs a chat loop per task."""
        raise NotImplementedError('the mmllava lmms-eval model answers '
                                  'generate_until and loglikelihood requests')


__all__ = ['LMMSAdapter', 'cut_at_stops']
