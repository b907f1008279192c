"""``mmllava/engine/resumable_test_loop.py``: predictions saved per batch,
and a resumed run that reuses them, in a real Runner."""
import itertools
import json
from pathlib import Path

import pytest
import torch
from mmengine.dataset import BaseDataset
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner, save_checkpoint
from mmengine.structures import BaseDataElement
from torch.utils.data import Dataset

from mmllava.engine.resumable_test_loop import (batches_left,
                                                dataset_fingerprint,
                                                read_predictions)
from mmllava.registry import LOOPS, METRICS, MODELS

NUM_SAMPLES, BATCH_SIZE = 10, 3  # batches of 3, 3, 3 and 1
#: Runners made within a second share a timestamp; their loggers need
#: their own names.
RUN_NUMBERS = itertools.count()


class Questions(Dataset):
    """Sample i asks about the number i."""

    def __init__(self, size: int = NUM_SAMPLES):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        sample = BaseDataElement(metainfo=dict(
            sample_id=f'q{index}', shape=(index, 2), gt_answer=str(index % 3)))
        return dict(inputs=torch.tensor([float(index)]), data_samples=sample)


class Answerer(BaseModel):
    """Answers ``i * 7 % 3``; counts the samples it predicts."""

    predicted: list[str] = []

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(7.0))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        for value, sample in zip(inputs, data_samples):
            Answerer.predicted.append(sample.sample_id)
            sample.set_metainfo(
                dict(pred_text=str(int(value.item() * self.scale) % 3)))
            # A tensor field: left out of the file.
            sample.logits = torch.zeros(2)
        return data_samples


class AnswerLog(BaseMetric):
    """Keeps what it was handed, in order; scores exact matches."""

    received: list[dict] = []

    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        AnswerLog.received = list(results)
        correct = [r['pred_text'] == r['gt_answer'] for r in results]
        return dict(accuracy=100 * sum(correct) / len(correct))


@pytest.fixture(autouse=True)
def registered():
    MODELS.register_module('ResumeTestAnswerer', module=Answerer, force=True)
    METRICS.register_module('ResumeTestAnswerLog', module=AnswerLog,
                            force=True)
    Answerer.predicted = []
    AnswerLog.received = []


def run_loop(work_dir: Path, resume=False, dataset=None, batch_size=BATCH_SIZE,
         load_from=None, shuffle=False):
    """Run the loop; return its metrics and the loop."""
    loader = dict(dataset=dataset or Questions(), batch_size=batch_size,
                  sampler=dict(type='DefaultSampler', shuffle=shuffle,
                               seed=1),
                  collate_fn=dict(type='pseudo_collate'))
    runner = Runner(
        model=dict(type='ResumeTestAnswerer'),
        work_dir=str(work_dir),
        test_dataloader=loader,
        test_evaluator=dict(type='ResumeTestAnswerLog'),
        test_cfg=dict(type='ResumableTestLoop', resume=resume),
        load_from=load_from,
        default_hooks=dict(checkpoint=None),
        default_scope='mmllava',
        experiment_name=f'resume_test_{next(RUN_NUMBERS)}',
        cfg=dict(load_from=load_from))
    metrics = runner.test()
    return metrics, runner.test_loop


def predictions_file(work_dir: Path) -> Path:
    return work_dir / 'predictions/rank0.jsonl'


def interrupt(work_dir: Path, keep: int, torn: str = '') -> None:
    """Cut the file to its header and first ``keep`` records, plus the
    start of a line a kill tore."""
    path = predictions_file(work_dir)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(''.join(lines[:1 + keep]) + torn)


@pytest.fixture
def uninterrupted(tmp_path):
    metrics, _ = run_loop(tmp_path / 'full')
    return metrics, AnswerLog.received, predictions_file(tmp_path / 'full')


def test_saves_every_prediction_after_a_header(tmp_path, uninterrupted):
    _, received, path = uninterrupted
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    header = lines[0]['header']
    assert header['dataset_length'] == NUM_SAMPLES
    assert header['world_size'] == 1
    assert header['checkpoint'] is None
    assert [line['index'] for line in lines[1:]] == list(range(NUM_SAMPLES))
    first = lines[1]['sample']
    # What the evaluator hands metrics, minus the tensor; tuples as lists.
    assert first == dict(sample_id='q0', shape=[0, 2], gt_answer='0',
                         pred_text='0')
    assert [line['sample'] for line in lines[1:]] == received
    # The answers are the model's: i * 7 % 3.
    assert [r['pred_text'] for r in received] == \
        [str(i * 7 % 3) for i in range(NUM_SAMPLES)]


@pytest.mark.parametrize('keep, torn', [(6, '{"index": 6, "sam'),
                                        (4, ''), (0, '{"inde')])
def test_resume_generates_only_the_rest_in_order(tmp_path, uninterrupted,
                                                 keep, torn):
    metrics, received, full_file = uninterrupted
    work_dir = tmp_path / 'full'
    interrupt(work_dir, keep, torn)
    Answerer.predicted = []
    resumed, loop = run_loop(work_dir, resume=True)
    assert loop.num_reused == keep
    assert loop.num_generated == NUM_SAMPLES - keep
    assert Answerer.predicted == [f'q{i}' for i in range(keep, NUM_SAMPLES)]
    assert resumed == metrics
    assert AnswerLog.received == received
    # The torn line is gone; the file is whole again.
    lines = full_file.read_text().splitlines()
    assert [json.loads(line).get('index') for line in lines[1:]] == \
        list(range(NUM_SAMPLES))


def test_resume_logs_how_many_predictions_it_reused(tmp_path):
    _, fresh = run_loop(tmp_path)
    fresh_log = next(Path(fresh.runner.log_dir).glob('*.log'))
    assert 'Reusing' not in fresh_log.read_text()
    interrupt(tmp_path, 7)
    _, loop = run_loop(tmp_path, resume=True)
    log_file = next(Path(loop.runner.log_dir).glob('*.log'))
    assert 'Reusing 7 predictions' in log_file.read_text()
    assert 'generating the other 3' in log_file.read_text()


def test_resume_with_another_batch_size_splits_a_batch(tmp_path,
                                                       uninterrupted):
    _, received, _ = uninterrupted
    interrupt(tmp_path / 'full', 4)
    Answerer.predicted = []
    _, loop = run_loop(tmp_path / 'full', resume=True, batch_size=2)
    assert loop.num_reused == 4
    assert AnswerLog.received == received


def test_a_finished_file_is_all_reused(tmp_path, uninterrupted):
    metrics, _, _ = uninterrupted
    Answerer.predicted = []
    resumed, loop = run_loop(tmp_path / 'full', resume=True)
    assert Answerer.predicted == []
    assert loop.num_reused == NUM_SAMPLES
    assert resumed == metrics


def test_without_resume_earlier_predictions_are_moved_aside(tmp_path):
    run_loop(tmp_path)
    interrupt(tmp_path, 2)
    earlier = predictions_file(tmp_path).read_text()
    Answerer.predicted = []
    _, loop = run_loop(tmp_path)
    assert loop.num_reused == 0
    assert len(Answerer.predicted) == NUM_SAMPLES
    aside = tmp_path / 'predictions/rank0.jsonl.previous'
    assert aside.read_text() == earlier
    assert len(predictions_file(tmp_path).read_text().splitlines()) == \
        1 + NUM_SAMPLES


def test_resume_without_a_file_starts_from_the_first_sample(tmp_path):
    _, loop = run_loop(tmp_path, resume=True)
    assert loop.num_reused == 0
    assert len(Answerer.predicted) == NUM_SAMPLES


def test_resume_refuses_another_dataset(tmp_path):
    run_loop(tmp_path)
    interrupt(tmp_path, 3)
    with pytest.raises(ValueError, match='dataset_length: 10 in the file, '
                       '12 now') as error:
        run_loop(tmp_path, resume=True, dataset=Questions(12))
    assert 'rank0.jsonl' in str(error.value)


def test_resume_refuses_another_checkpoint(tmp_path):
    first, second = tmp_path / 'first.pth', tmp_path / 'second.pth'
    for path in (first, second):
        save_checkpoint(Answerer().state_dict(), str(path))
    run_loop(tmp_path / 'run', load_from=str(first))
    interrupt(tmp_path / 'run', 3)
    with pytest.raises(ValueError, match='checkpoint: .*first.pth.* in the '
                       r'file, .*second.pth.* now'):
        run_loop(tmp_path / 'run', resume=True, load_from=str(second))
    # The same checkpoint resumes.
    _, loop = run_loop(tmp_path / 'run', resume=True, load_from=str(first))
    assert loop.num_reused == 3


def test_resume_refuses_another_world_size(tmp_path):
    run_loop(tmp_path)
    interrupt(tmp_path, 3)
    path = predictions_file(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header['header']['world_size'] = 2
    path.write_text(json.dumps(header) + '\n' + ''.join(lines[1:]))
    with pytest.raises(ValueError,
                       match='world_size: 2 in the file, 1 now'):
        run_loop(tmp_path, resume=True)


def test_resume_refuses_records_out_of_sampler_order(tmp_path):
    run_loop(tmp_path, shuffle=True)
    interrupt(tmp_path, 3)
    # The sampler config is part of the fingerprint; rewrite the header as
    # if this run's had written it, so that only the order differs.
    path = predictions_file(tmp_path)
    run_loop(tmp_path / 'unshuffled')
    header = predictions_file(tmp_path / 'unshuffled').read_text()
    records = path.read_text().splitlines(keepends=True)[1:]
    path.write_text(header.splitlines(keepends=True)[0] + ''.join(records))
    with pytest.raises(ValueError, match='line 2 holds sample .*, but the '
                       'sampler now puts sample 0 there'):
        run_loop(tmp_path, resume=True)


def test_a_broken_line_before_the_last_is_an_error(tmp_path):
    run_loop(tmp_path)
    path = predictions_file(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = '{"index": 2, "sam\n'
    path.write_text(''.join(lines))
    with pytest.raises(ValueError, match='rank0.jsonl: line 4 is not a '
                       'prediction record'):
        read_predictions(path)


class Annotations(BaseDataset):

    def __init__(self, answers):
        self.answers = answers
        # Serializing runs gc.collect(), 0.5 s in a process holding torch.
        super().__init__(pipeline=[], serialize_data=False)

    def load_data_list(self):
        return [dict(question_id=i, answer=a)
                for i, a in enumerate(self.answers)]


def test_dataset_fingerprint_follows_the_annotations():
    assert dataset_fingerprint(Annotations(['a', 'b'])) == \
        dataset_fingerprint(Annotations(['a', 'b']))
    assert dataset_fingerprint(Annotations(['a', 'b'])) != \
        dataset_fingerprint(Annotations(['a', 'c']))


def test_batches_left_cuts_the_batch_where_the_saved_samples_end():
    batches = [[0, 1, 2], [3, 4, 5], [6]]
    assert batches_left(batches, 0) == [(0, [0, 1, 2]), (1, [3, 4, 5]),
                                        (2, [6])]
    assert batches_left(batches, 3) == [(1, [3, 4, 5]), (2, [6])]
    assert batches_left(batches, 4) == [(1, [4, 5]), (2, [6])]
    assert batches_left(batches, 7) == []


def test_loop_is_registered():
    assert LOOPS.get('ResumableTestLoop') is not None
