"""Prompts -> samples (the model's ``test_pipeline``) -> batches generated
by the model, each row streamed and stopped on its own."""
import copy
import threading
from dataclasses import dataclass, field
from typing import Optional, Protocol

from PIL import Image
from transformers import StoppingCriteriaList

from mmllava.apis.generation import build_test_pipeline, image_fields
from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.models.answering import answer_samples
from mmllava.serving.streaming import (BatchStreamer, RowResult,
                                       RowStoppingCriteria, RowStream)


@dataclass(frozen=True)
class Sampling:
    """How tokens are chosen; requests with equal settings share batches.

    Args:
        temperature (float): 0 decodes greedily.
        top_p (float): Nucleus sampling mass (sampling only).
    """

    temperature: float = 0.0
    top_p: float = 1.0

    def generation_kwargs(self) -> dict:
        if self.temperature == 0:
            return dict(do_sample=False)
        # top_k=0: OpenAI's sampling has no top-k cut.
        return dict(do_sample=True, temperature=self.temperature,
                    top_p=self.top_p, top_k=0)


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
    """One request, ready to generate.

    Args:
        sample (dict): The ``test_pipeline`` output.
        prompt_tokens (int): Prompt length with the image's feature rows.
        max_tokens (int): The most tokens to generate.
        events (JobEvents): Receives the text and the result.
        sampling (Sampling): Greedy by default.
        stops (list[str]): The request's stop strings.
    """

    sample: dict
    prompt_tokens: int
    max_tokens: int
    events: JobEvents
    sampling: Sampling = Sampling()
    stops: list[str] = field(default_factory=list)


class GenerationEngine:
    """Turn conversations into samples and generate batches of them.

    Samples are prepared in request threads with a copy of the tokenizer,
    since a ``tokenizers`` tokenizer must not be used by two threads at
    once and the generation thread decodes with the model's own.

    Args:
        model (LLaVA): Built by :func:`mmllava.apis.get_model` (its
            ``cfg.test_pipeline`` and chat template are used).
    """

    def __init__(self, model) -> None:
        self.model = model
        # Clients' text never becomes special tokens, whatever the config
        # says: a '</s>' or '<|im_start|>' in a message would forge turns.
        self.pipeline = build_test_pipeline(
            model, tokenizer=copy.deepcopy(model.tokenizer),
            special_tokens_in_content='text')
        self._pipeline_lock = threading.Lock()
        self.context_length: Optional[int] = getattr(
            model.llm.config, 'max_position_embeddings', None)

    def prepare(self, turns: list[dict], image: Optional[Image.Image],
                request_id: str) -> dict:
        """Run the ``test_pipeline`` on one conversation.

        Raises:
            ValueError: The template cannot render the conversation (e.g.
                ``plain`` takes one question about an image).
        """
        with self._pipeline_lock:
            return self.pipeline(dict(sample_id=request_id,
                                      conversations=list(turns),
                                      **image_fields(image)))

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

    def run_batch(self, jobs: list[GenerationJob]) -> None:
        """Generate all jobs as one batch (equal sampling settings)."""
        jobs = [job for job in jobs if not job.events.cancelled]
        if not jobs:
            return
        model = self.model
        rows = [RowStream(model.tokenizer, model.template.stop, job.stops,
                          job.max_tokens, job.events.delta,
                          lambda job=job: job.events.cancelled)
                for job in jobs]

        def report(results: list[RowResult]) -> None:
            for job, result in zip(jobs, results):
                job.events.finish(result)

        try:
            answer_samples(
                model, [job.sample for job in jobs],
                streamer=BatchStreamer(rows, report),
                stopping_criteria=StoppingCriteriaList(
                    [RowStoppingCriteria(rows)]),
                max_new_tokens=max(job.max_tokens for job in jobs),
                **jobs[0].sampling.generation_kwargs())
        except Exception as error:
            for job in jobs:
                job.events.fail(error)
