"""Continuous batching: a request joins the running batch at the next
decoding step instead of waiting for the batch to finish.

One worker thread loops: admit waiting requests (their prompts are
prefilled together into a KV cache of their own, which is then merged into
the running batch's cache, left-padded to a common length), then one
decoding step for every running row, then drop the rows that ended.
transformers' own continuous batching (``generate_batch``) takes token ids
only, and a LLaVA prompt is embeddings with the image features spliced in,
so the loop calls the LLM's forward with a ``DynamicCache`` directly.

Each row chooses its tokens on its own (its penalties, ``min_tokens``,
temperature, top-k/top-p and, for a seeded request, its own random
generator), so requests with any settings share the batch; a greedy answer
equals the one ``generate`` gives.
"""
import logging
import math
import queue
import threading
import time
from collections import Counter
from typing import Optional

import torch
from mmengine.dataset import pseudo_collate
from transformers import (DynamicCache, LogitsProcessorList,
                          TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)

from mmllava.models.model_inputs import LLaVAInputs
from mmllava.models.packed_linears import packed_cpu_kernels
from mmllava.serving.batcher import QueueFull
from mmllava.serving.engine import GenerationJob
from mmllava.serving.sampling import token_entry
from mmllava.serving.streaming import RowResult, RowStream

logger = logging.getLogger(__name__)

_STOP = object()
#: ``generation_cfg`` keys the loop follows (the request's sampling decides
#: the rest); any other key would be silently ignored, so it is refused.
HANDLED_GENERATION_KEYS = {'max_new_tokens', 'do_sample', 'temperature',
                           'top_p', 'top_k', 'num_beams'}


class _Row:
    """One running request: its stream, its tokens and how it samples."""

    def __init__(self, job: GenerationJob, model) -> None:
        self.job = job
        self.stream = RowStream(model.tokenizer, model.template.stop,
                                job.stops, job.max_tokens, job.events.delta,
                                lambda: job.events.cancelled)
        self.stream.start(torch.empty(0, dtype=torch.long))
        self.tokens: list[int] = []
        self.logprobs: Optional[list] = [] \
            if job.top_logprobs is not None else None
        sampling = job.sampling
        self.processors = LogitsProcessorList(sampling.logits_processors(
            model.tokenizer.eos_token_id))
        self.greedy = sampling.temperature == 0
        #: Greedy with nothing to apply or record: its token is the batch's
        #: argmax, taken for all such rows at once.
        self.plain_greedy = self.greedy and not self.processors and \
            self.logprobs is None
        self.warpers = LogitsProcessorList()
        self.generator = None
        if not self.greedy:
            self.warpers.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_k:
                self.warpers.append(TopKLogitsWarper(sampling.top_k))
            if sampling.top_p < 1:
                self.warpers.append(TopPLogitsWarper(sampling.top_p))
            if sampling.seed is not None:
                # Each choice of a seeded request has its own stream of
                # random numbers, whatever else runs beside it.
                choice = getattr(job.events, 'index', 0)
                self.generator = torch.Generator().manual_seed(
                    sampling.seed * 1_000_003 + choice)

    def choose(self, logits: torch.Tensor, tokenizer) -> int:
        """The next token from this row's ``(V,)`` logits."""
        generated = torch.tensor([self.tokens], dtype=torch.long)
        scores = self.processors(generated, logits[None].float())
        if self.greedy:
            token = int(scores[0].argmax())
        else:
            probs = torch.softmax(self.warpers(generated, scores), dim=-1)
            token = int(torch.multinomial(probs[0].cpu(), 1,
                                          generator=self.generator))
        if self.logprobs is not None:
            logprobs = torch.log_softmax(scores[0], dim=-1).cpu()
            entry = token_entry(tokenizer, token, float(logprobs[token]))
            top = self.job.top_logprobs
            values, ids = logprobs.topk(top) if top else ((), ())
            entry['top_logprobs'] = [
                token_entry(tokenizer, int(i), float(v))
                for v, i in zip(values, ids)]
            self.logprobs.append(entry)
        return token

    def add(self, token: int) -> bool:
        """Stream ``token``; whether the row has ended."""
        self.tokens.append(token)
        self.stream.put(torch.tensor([token]), len(self.tokens))
        return self.stream.check_end(torch.tensor(self.tokens))

    def finish(self) -> None:
        result = self.stream.end()
        result.logprobs = self.logprobs
        self.job.events.finish(result)


class ContinuousBatcher:
    """Run jobs with iteration-level scheduling; the interface of
    :class:`~mmllava.serving.batcher.DynamicBatcher` (``start``, ``stop``,
    ``submit``, ``retry_after_s``, ``stats``, ``running``).

    Args:
        model (LLaVA): The model (its LLM, splice and tokenizer).
        max_batch_size (int): Most rows decoding together.
        queue_size (int): Most jobs waiting to join; :meth:`submit` refuses
            more.
    """

    def __init__(self, model, max_batch_size: int, queue_size: int) -> None:
        if max_batch_size < 1 or queue_size < 1:
            raise ValueError('max_batch_size and queue_size must be >= 1; '
                             f'got {max_batch_size}, {queue_size}.')
        unknown = set(model.generation_cfg) - HANDLED_GENERATION_KEYS
        if unknown or model.generation_cfg.get('num_beams', 1) != 1:
            raise ValueError(
                'Continuous batching follows only '
                f'{sorted(HANDLED_GENERATION_KEYS)} (num_beams=1) of the '
                "model's generation_cfg; it has "
                f'{dict(model.generation_cfg)}. Serve it with static '
                'batching.')
        self.model = model
        self.max_batch_size = max_batch_size
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = None
        self._lock = threading.Lock()
        self._batch_sizes: Counter = Counter()
        self._admitted = 0
        self._last_step_s = 0.0
        # The running batch: rows, their KV cache, mask and positions.
        self.rows: list[_Row] = []
        self.cache: Optional[DynamicCache] = None
        self.mask: Optional[torch.Tensor] = None
        self.positions: Optional[torch.Tensor] = None
        self.next_tokens: Optional[torch.Tensor] = None

    # The DynamicBatcher interface.
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work,
                                            name='continuous-batcher',
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the running rows and end the worker."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, job: GenerationJob) -> None:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull(f'{self._queue.maxsize} requests are waiting.') \
                from None

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: a rough answer's time (64
        decoding steps)."""
        return max(1, math.ceil(64 * self._last_step_s))

    def stats(self) -> dict:
        """As :meth:`DynamicBatcher.stats`; ``batch_sizes`` counts the
        decoding steps by how many rows they ran, ``num_items`` the jobs
        admitted."""
        with self._lock:
            sizes = dict(self._batch_sizes)
            admitted = self._admitted
        return dict(num_batches=sum(sizes.values()), num_items=admitted,
                    largest_batch=max(sizes, default=0),
                    waiting=self._queue.qsize(), batch_sizes=sizes)

    # The loop.
    def _work(self) -> None:
        stopping = False
        while not (stopping and not self.rows):
            waiting, stopping = self._take(block=not self.rows,
                                           stopping=stopping)
            try:
                if waiting:
                    self._admit(waiting)
                if self.rows:
                    self._step()
            except Exception as error:  # the worker must outlive a failure
                logger.error('Continuous batch of %d failed: %s: %s',
                             len(self.rows) + len(waiting),
                             type(error).__name__, error)
                for row in self.rows:
                    row.job.events.fail(error)
                for job in waiting:
                    if not any(row.job is job for row in self.rows):
                        job.events.fail(error)
                self._clear()

    def _take(self, block: bool, stopping: bool) -> tuple[list, bool]:
        """Waiting jobs that fit in the batch (blocking for the first when
        nothing runs)."""
        jobs = []
        room = self.max_batch_size - len(self.rows)
        while len(jobs) < room and not stopping:
            try:
                job = self._queue.get(block=block and not jobs)
            except queue.Empty:
                break
            if job is _STOP:
                stopping = True
                break
            if job.events.cancelled:
                # Its client left while it waited: it ends unstarted.
                job.events.finish(RowResult('', 'cancelled', 0))
                continue
            jobs.append(job)
        return jobs, stopping

    @torch.no_grad()
    def _admit(self, jobs: list[GenerationJob]) -> None:
        """Prefill the jobs' prompts, choose their first tokens and merge
        them into the running batch."""
        model = self.model
        batch = model.data_preprocessor(pseudo_collate(
            [job.sample for job in jobs]))
        cache = DynamicCache()
        with packed_cpu_kernels(model):
            embeds, mask, _ = model.embed_inputs(
                LLaVAInputs.from_batch(batch).without_labels(), 'left')
            mask = mask.long()
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            output = model.llm(inputs_embeds=embeds, attention_mask=mask,
                               position_ids=positions, past_key_values=cache,
                               use_cache=True, logits_to_keep=1)
        rows = [_Row(job, model) for job in jobs]
        tokens = choose_tokens(rows, output.logits[:, -1], model.tokenizer)
        with self._lock:
            self._admitted += len(jobs)
        self._merge(rows, output.past_key_values, mask,
                    mask.sum(-1), torch.tensor(tokens))
        self._after_tokens(tokens, first_row=len(self.rows) - len(rows))

    def _merge(self, rows, cache, mask, positions, tokens) -> None:
        if not self.rows:
            self.rows, self.cache, self.mask = rows, cache, mask
            self.positions, self.next_tokens = positions, tokens
            return
        # Left-pad the shorter cache so that both end at the same column.
        old_len, new_len = self.mask.shape[1], mask.shape[1]
        length = max(old_len, new_len)
        for old_layer, new_layer in zip(self.cache.layers, cache.layers):
            for name in ('keys', 'values'):
                old = left_pad(getattr(old_layer, name), length, dim=2)
                new = left_pad(getattr(new_layer, name), length, dim=2)
                setattr(old_layer, name, torch.cat([old, new]))
        self.mask = torch.cat([left_pad(self.mask, length, dim=1),
                               left_pad(mask, length, dim=1)])
        self.positions = torch.cat([self.positions, positions])
        self.next_tokens = torch.cat([self.next_tokens, tokens])
        self.rows = self.rows + rows

    @torch.no_grad()
    def _step(self) -> None:
        """One decoding step for every running row."""
        model = self.model
        start = time.monotonic()
        with self._lock:
            self._batch_sizes[len(self.rows)] += 1
        device = self.mask.device
        self.mask = torch.cat([self.mask, torch.ones(
            len(self.rows), 1, dtype=self.mask.dtype, device=device)], dim=1)
        with packed_cpu_kernels(model):
            output = model.llm(
                input_ids=self.next_tokens[:, None].to(device),
                attention_mask=self.mask,
                position_ids=self.positions[:, None].to(device),
                past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = output.past_key_values
        self.positions = self.positions + 1
        tokens = choose_tokens(self.rows, output.logits[:, -1],
                               model.tokenizer)
        self.next_tokens = torch.tensor(tokens)
        self._after_tokens(tokens, first_row=0)
        self._last_step_s = time.monotonic() - start

    def _after_tokens(self, tokens: list[int], first_row: int) -> None:
        """Stream the rows' new tokens; drop the rows that ended."""
        keep = []
        for index, row in enumerate(self.rows):
            if index >= first_row and row.add(tokens[index - first_row]):
                row.finish()
            else:
                keep.append(index)
        if len(keep) == len(self.rows):
            return
        if not keep:
            self._clear()
            return
        indices = torch.tensor(keep)
        self.rows = [self.rows[index] for index in keep]
        self.cache.batch_select_indices(indices.to(self.mask.device))
        self.mask = self.mask[indices.to(self.mask.device)]
        self.positions = self.positions[indices]
        self.next_tokens = self.next_tokens[indices]
        # Columns that are padding in every remaining row are dropped.
        first = int(self.mask.any(0).long().argmax())
        if first:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]

    def _clear(self) -> None:
        self.rows, self.cache, self.mask = [], None, None
        self.positions, self.next_tokens = None, None


def choose_tokens(rows: list, logits: torch.Tensor, tokenizer) -> list[int]:
    """Each row's next token from the step's ``(B, V)`` logits."""
    greedy = logits.float().argmax(-1).tolist()
    return [greedy[index] if row.plain_greedy
            else row.choose(logits[index], tokenizer)
            for index, row in enumerate(rows)]


def left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """``tensor`` with zeros before it along ``dim`` up to ``length``."""
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
