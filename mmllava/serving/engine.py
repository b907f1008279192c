"""Prompts -> samples (the model's ``test_pipeline``) -> batches generated
by the model, each row streamed and stopped on its own."""
import copy
import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence, Union

import torch
from mmengine.dataset import Compose
from PIL import Image
from transformers import LogitsProcessorList, StoppingCriteriaList

from mmllava.apis.generation import build_test_pipeline, image_fields
from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.models.answering import answer_samples
from mmllava.models.cpu_generation import fast_cpu_generation
from mmllava.serving.sampling import (LogprobsRecorder, MinTokensProcessor,
                                      PenaltyProcessor)
from mmllava.serving.streaming import (BatchStreamer, RowResult,
                                       RowStoppingCriteria, RowStream)
from mmllava.templates import LLAVA_SYSTEM, QWEN_SYSTEM, VICUNA_SYSTEM
from mmllava.templates.chatml_direct import CHATML_DIRECT_SYSTEM
from mmllava.templates.inst import LLAVA_LLAMA_2_SYSTEM
from mmllava.templates.llama3 import LLAMA_3_SYSTEM

#: The system prompts templates open with; a request's system message
#: takes the place of the one its template holds.
DEFAULT_SYSTEM_PROMPTS = (VICUNA_SYSTEM, LLAVA_SYSTEM, QWEN_SYSTEM,
                          CHATML_DIRECT_SYSTEM, LLAVA_LLAMA_2_SYSTEM,
                          LLAMA_3_SYSTEM)


@dataclass(frozen=True)
class Sampling:
    """How tokens are chosen; requests with equal settings share batches.

    Args:
        temperature (float): 0 decodes greedily.
        top_p (float): Nucleus sampling mass (sampling only).
        top_k (int): Keep the ``top_k`` likeliest tokens (sampling only);
            0 keeps all, as OpenAI's sampling does.
        frequency_penalty (float): Subtracted from a token's logit once per
            time the answer holds it (OpenAI's definition).
        presence_penalty (float): Subtracted once from the logit of every
            token the answer holds.
        min_tokens (int): End of sequence is impossible before this many
            tokens.
        seed (int, optional): Seeds the sampler: the same request with the
            same seed samples the same answer.
        group (str, optional): Only jobs of one group share a batch (a
            seeded request's samples, whose answers must not depend on
            other requests).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    min_tokens: int = 0
    seed: Optional[int] = None
    group: Optional[str] = None

    def generation_kwargs(self) -> dict:
        if self.temperature == 0:
            return dict(do_sample=False)
        return dict(do_sample=True, temperature=self.temperature,
                    top_p=self.top_p, top_k=self.top_k)

    def logits_processors(self, eos_token_id: int) -> list:
        processors = []
        if self.frequency_penalty or self.presence_penalty:
            processors.append(PenaltyProcessor(self.frequency_penalty,
                                               self.presence_penalty))
        if self.min_tokens:
            processors.append(MinTokensProcessor(self.min_tokens,
                                                 eos_token_id))
        return processors


class JobEvents(Protocol):
    """Where a job's results go (called from the generation thread)."""

    cancelled: bool

    def delta(self, text: str) -> None:
        ...

    def finish(self, result: RowResult) -> None:
        ...

    def fail(self, error: Exception) -> None:
        ...


@dataclass
class GenerationJob:
    """One request (one of its ``n`` choices), ready to generate.

    Args:
        sample (dict): The ``test_pipeline`` output.
        prompt_tokens (int): Prompt length with the image's feature rows.
        max_tokens (int): The most tokens to generate.
        events (JobEvents): Receives the text and the result.
        sampling (Sampling): Greedy by default.
        stops (list[str]): The request's stop strings.
        top_logprobs (int, optional): Record each generated token's log
            probability and this many alternatives; None records nothing.
    """

    sample: dict
    prompt_tokens: int
    max_tokens: int
    events: JobEvents
    sampling: Sampling = Sampling()
    stops: list[str] = field(default_factory=list)
    top_logprobs: Optional[int] = None


class GenerationEngine:
    """Turn conversations into samples and generate batches of them.

    Images are decoded, padded and processed outside the lock; only
    tokenizing holds it, since a ``tokenizers`` tokenizer must not be used
    by two threads at once (samples are tokenized with a copy of it; the
    generation thread decodes with the model's own).

    Args:
        model (LLaVA): Built by :func:`mmllava.apis.get_model` (its
            ``cfg.test_pipeline`` and chat template are used).
    """

    def __init__(self, model) -> None:
        self.model = model
        # Clients' text never becomes special tokens, whatever the config
        # says: a '</s>' or '<|im_start|>' in a message would forge turns.
        self.tokenizer = copy.deepcopy(model.tokenizer)
        pipeline = build_test_pipeline(
            model, tokenizer=self.tokenizer,
            special_tokens_in_content='text')
        names = [type(step).__name__ for step in pipeline.transforms]
        split = names.index('TokenizeConversation') \
            if 'TokenizeConversation' in names else 0
        self.image_steps = Compose(pipeline.transforms[:split])
        self.text_steps = Compose(pipeline.transforms[split:])
        self.tokenize_step = pipeline.transforms[split] \
            if split < len(names) else None
        #: Whether the pipeline pads images to squares (the canvas, not the
        #: image, is then what the pixel cap limits).
        self.pads_to_square = any(
            type(step).__name__ == 'PadToSquare' or
            getattr(step, 'pad_background', None) is not None
            for step in pipeline.transforms)
        self._pipeline_lock = threading.Lock()
        self.context_length: Optional[int] = getattr(
            model.llm.config, 'max_position_embeddings', None)
        self.special_tokens = sorted(
            {str(token) for token in self.tokenizer.all_special_tokens}
            | {str(token) for token in getattr(
                self.tokenizer, 'added_tokens_decoder', {}).values()}, key=len)

    def prepare(self, turns: list[dict],
                images: Union[Image.Image, Sequence[Image.Image], None],
                request_id: str, system: Optional[str] = None) -> dict:
        """Run the ``test_pipeline`` on one conversation about ``images``
        (one, a list in the order of their ``<image>``, or none); ``system``
        replaces the template's system prompt.

        Raises:
            ValueError: The template cannot render the conversation (e.g.
                ``plain`` takes one question about an image, and has no
                system prompt).
        """
        if isinstance(images, (list, tuple)):
            images = None if not images else \
                images[0] if len(images) == 1 else list(images)
        results = self.image_steps(dict(sample_id=request_id,
                                         conversations=list(turns),
                                         **image_fields(images)))
        with self._pipeline_lock:
            if system is None:
                return self.text_steps(results)
            template = getattr(self.tokenize_step, 'template', None)
            self.tokenize_step.template = self.with_system(template, system)
            try:
                return self.text_steps(results)
            finally:
                self.tokenize_step.template = template

    def with_system(self, template, system: str):
        """``template`` with ``system`` as its system prompt."""
        if template is None:
            raise ValueError('the test_pipeline has no TokenizeConversation '
                             'step, so no system prompt to replace.')
        for token in self.special_tokens:
            if token and token in system:
                raise ValueError(f'the system message holds the special '
                                 f'token {token!r}, which it may not.')
        # Most templates open with their system prompt; Llama-2's sits in
        # its first [INST].
        for field in ('system', 'first_user'):
            text = getattr(template, field) or ''
            for default in DEFAULT_SYSTEM_PROMPTS:
                if default in text:
                    return dataclasses.replace(
                        template, **{field: text.replace(default, system)})
        raise ValueError(f'template {template.name!r} has no system prompt '
                         'to replace; send no system message.')

    def prompt_tokens(self, sample: dict) -> int:
        """Prompt length as the LLM sees it, each image as its rows (with
        AnyRes, a number that depends on the image's size)."""
        input_ids = sample['inputs']['input_ids']
        num_images = int((input_ids == IMAGE_TOKEN_INDEX).sum())
        # Only AnyRes pipelines give sizes; padded images all count alike.
        sizes = sample['inputs'].get('image_sizes')
        sizes = [None] * num_images if sizes is None \
            else [tuple(size) for size in sizes.tolist()]
        image_rows = sum(self.model.image_token_count(size) for size in sizes)
        return len(input_ids) - num_images + image_rows

    def run_batch(self, jobs: Sequence[GenerationJob]) -> None:
        """Generate all jobs as one batch (equal sampling settings)."""
        live = []
        for job in jobs:
            if job.events.cancelled:
                # Its client left while it waited: it ends unstarted.
                job.events.finish(RowResult('', 'cancelled', 0))
            else:
                live.append(job)
        if not live:
            return
        jobs = live
        model = self.model
        sampling = jobs[0].sampling
        rows = [RowStream(model.tokenizer, model.template.stop, job.stops,
                          job.max_tokens, job.events.delta,
                          lambda job=job: job.events.cancelled)
                for job in jobs]
        processors = sampling.logits_processors(model.tokenizer.eos_token_id)
        criteria = [RowStoppingCriteria(rows)]
        wanted = [job.top_logprobs for job in jobs]
        recorder = None
        if any(top is not None for top in wanted):
            recorder = LogprobsRecorder(model.tokenizer, wanted)
            # Last: it records the distribution the token is chosen from
            # (penalties applied; temperature and cuts are not).
            processors.append(recorder)
            criteria.insert(0, recorder.taker)

        def report(results: list[RowResult]) -> None:
            for index, (job, result) in enumerate(zip(jobs, results)):
                if recorder is not None and wanted[index] is not None:
                    result.logprobs = recorder.rows[index][
                        :result.completion_tokens]
                job.events.finish(result)

        try:
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            with fast_cpu_generation(model):
                answer_samples(
                    model, [job.sample for job in jobs],
                    streamer=BatchStreamer(rows, report),
                    stopping_criteria=StoppingCriteriaList(criteria),
                    logits_processor=LogitsProcessorList(processors),
                    max_new_tokens=max(job.max_tokens for job in jobs),
                    **sampling.generation_kwargs())
        except Exception as error:
            for job in jobs:
                job.events.fail(error)
