"""``mmllava/serving/continuous.py``: requests join the running batch at
the next decoding step, and answers equal those of static batches."""
import threading
from pathlib import Path

import pytest
from PIL import Image

from mmllava.serving.continuous import ContinuousBatcher
from mmllava.serving.engine import GenerationEngine, GenerationJob, Sampling
from mmllava.serving.streaming import RowResult

pytestmark = pytest.mark.usefixtures('one_thread', 'in_workspace')

QUESTIONS = ['What is in the image?', 'Describe the colours.', 'Hello?',
             'Is it big?']


FINISHED = []


class Events:
    """Job events for a thread: the text pieces and the result (the order
    of results is kept in ``FINISHED``)."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.cancelled = False
        self.pieces, self.result, self.error = [], None, None
        self.done = threading.Event()
        self.first_piece = threading.Event()

    def delta(self, text: str) -> None:
        self.pieces.append(text)
        self.first_piece.set()

    def finish(self, result: RowResult) -> None:
        self.result = result
        FINISHED.append(self)
        self.done.set()

    def fail(self, error: Exception) -> None:
        self.error = error
        self.done.set()


@pytest.fixture(scope='module')
def engine(serving_model, model_workspace):
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(model_workspace)
        return GenerationEngine(serving_model)


def make_job(engine, model_workspace, index: int, max_tokens: int,
             sampling=Sampling(), top_logprobs=None,
             choice=0) -> GenerationJob:
    question = QUESTIONS[index % len(QUESTIONS)]
    photo = ['coffee', 'rocket', None][index % 3]
    image = Image.open(Path(model_workspace, f'{photo}.png')) if photo \
        else None
    turns = [{'from': 'human',
              'value': ('<image>\n' if photo else '') + question}]
    sample = engine.prepare(turns, image, f'r{index}')
    return GenerationJob(sample=sample,
                         prompt_tokens=engine.prompt_tokens(sample),
                         max_tokens=max_tokens, events=Events(choice),
                         sampling=sampling, top_logprobs=top_logprobs)


def static_answer(engine, job: GenerationJob) -> RowResult:
    job.events = Events()
    engine.run_batch([job])
    assert job.events.done.wait(60)
    return job.events.result


def test_late_requests_join_the_running_batch_with_equal_answers(
        engine, serving_model, model_workspace):
    batcher = ContinuousBatcher(serving_model, max_batch_size=4,
                                queue_size=16)
    jobs = [make_job(engine, model_workspace, index, 4 + 3 * (index % 4))
            for index in range(7)]
    jobs[0].max_tokens = 40
    jobs[0].sampling = Sampling(min_tokens=40)  # a long first answer
    expected = [static_answer(engine, make_job(
        engine, model_workspace, index, job.max_tokens, job.sampling))
        for index, job in enumerate(jobs)]
    batcher.start()
    try:
        batcher.submit(jobs[0])
        # The others come while the first one is generating.
        assert jobs[0].events.first_piece.wait(60)
        for job in jobs[1:]:
            batcher.submit(job)
        for job in jobs:
            assert job.events.done.wait(120)
    finally:
        batcher.stop()
    results = [job.events.result for job in jobs]
    assert [result.text for result in results] == \
        [result.text for result in expected]
    assert [result.completion_tokens for result in results] == \
        [result.completion_tokens for result in expected]
    assert [result.finish_reason for result in results] == \
        [result.finish_reason for result in expected]
    # The short late answers did not wait for the long first one.
    order = [FINISHED.index(job.events) for job in jobs]
    assert order[0] == max(order)
    stats = batcher.stats()
    assert stats['num_items'] == 7
    # Steps ran with more than one row: the late jobs joined the first.
    assert stats['largest_batch'] > 1
    assert stats['largest_batch'] <= 4


def test_seeds_logprobs_and_cancelling_in_a_shared_batch(
        engine, serving_model, model_workspace):
    batcher = ContinuousBatcher(serving_model, max_batch_size=8,
                                queue_size=16)
    seeded = Sampling(temperature=1.5, top_k=50, seed=5)

    def run(jobs):
        batcher.start()
        try:
            for job in jobs:
                batcher.submit(job)
            for job in jobs:
                assert job.events.done.wait(120)
        finally:
            batcher.stop()
        return [job.events.result for job in jobs]

    alone = run([make_job(engine, model_workspace, 1, 8, seeded)])
    crowd = run([make_job(engine, model_workspace, 1, 8, seeded),
                 make_job(engine, model_workspace, 1, 8, seeded, choice=1),
                 make_job(engine, model_workspace, 2, 8, top_logprobs=2)])
    # A seeded choice samples the same, whatever runs beside it.
    assert crowd[0].text == alone[0].text
    assert crowd[1].text != crowd[0].text
    logprobs = crowd[2].logprobs
    assert len(logprobs) == crowd[2].completion_tokens
    assert all(entry['logprob'] == pytest.approx(
        entry['top_logprobs'][0]['logprob']) for entry in logprobs)
    cancelled = make_job(engine, model_workspace, 0, 40)
    cancelled.events.cancelled = True
    assert run([cancelled])[0].finish_reason == 'cancelled'


def test_a_generation_cfg_it_cannot_follow_is_refused(serving_model,
                                                      monkeypatch):
    monkeypatch.setattr(serving_model, 'generation_cfg',
                        dict(max_new_tokens=8, repetition_penalty=1.2))
    with pytest.raises(ValueError, match='repetition_penalty'):
        ContinuousBatcher(serving_model, max_batch_size=2, queue_size=2)
