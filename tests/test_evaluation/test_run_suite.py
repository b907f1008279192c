"""``tools/eval/run_suite.py``: present benchmarks run, absent ones skipped
with one line, a killed suite resumes, one table beside the published
numbers; and (slow) the whole thing on the demo model."""
import base64
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location(
    'run_suite', REPO / 'tools/eval/run_suite.py')
run_suite_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_suite_module)
Benchmark = run_suite_module.Benchmark
run_suite = run_suite_module.run_suite

CONFIGS = REPO / 'configs/llava'
SUITE = [
    Benchmark('MMBench', str(CONFIGS / 'llava-1.5-7b_mmbench.py'),
              'mmbench/accuracy', 64.3),
    Benchmark('SEED-IMG', str(CONFIGS / 'llava-1.5-7b_seed.py'),
              'seed/accuracy', 66.1),
    Benchmark('MM-Vet', str(CONFIGS / 'llava-1.5-7b_mmvet.py'),
              'mm-vet/total', 31.1),
]


class FakeTestPy:
    """Stands in for tools/test.py: writes the metrics file, or is killed
    part way (predictions saved, no metrics) the first time it runs a
    benchmark named in ``kill``."""

    def __init__(self, values, kill=()):
        self.values = values
        self.kill = set(kill)
        self.commands = []

    def __call__(self, command, log_file):
        self.commands.append(command)
        work_dir = command[command.index('--work-dir') + 1]
        config = Path(command[2]).stem
        name = Path(work_dir).name
        if name in self.kill:
            self.kill.discard(name)
            os.makedirs(os.path.join(work_dir, 'predictions'))
            return -9
        Path(work_dir, f'{config}_answers.metrics.json').write_text(
            json.dumps(self.values[name]))
        return 0


def test_runs_present_skips_absent_and_resumes_after_a_kill(tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'data/eval/mmbench').mkdir(parents=True)
    (tmp_path / 'data/eval/mmbench/mmbench_dev_20230712.tsv').write_text('')
    (tmp_path / 'data/eval/seed_bench').mkdir(parents=True)
    (tmp_path / 'data/eval/seed_bench/SEED-Bench.json').write_text('{}')
    values = {'MMBench': {'mmbench/accuracy': 12.5},
              'SEED-IMG': {'seed/accuracy': 40.0, 'seed/questions': 5}}
    lines = []
    fake = FakeTestPy(values, kill=['SEED-IMG'])
    rows = run_suite(SUITE, 'ckpt.pth', 'suite', run=fake, say=lines.append)
    assert [row['status'] for row in rows] == [
        'done', 'failed (exit -9; see suite/SEED-IMG/suite.log)',
        'absent (data/eval/mm-vet/mm-vet.json)']
    assert 'MM-Vet: skipped, no data/eval/mm-vet/mm-vet.json' in lines
    assert len(fake.commands) == 2 and '--resume' not in fake.commands[1]
    # The rerun: MMBench is done, SEED resumes from its predictions.
    rows = run_suite(SUITE, 'ckpt.pth', 'suite', run=fake, say=lines.append)
    assert len(fake.commands) == 3
    assert fake.commands[2][2].endswith('llava-1.5-7b_seed.py')
    assert '--resume' in fake.commands[2]
    assert [(row['name'], row['value'], row['published'], row['status'])
            for row in rows] == [
        ('MMBench', 12.5, 64.3, 'done'), ('SEED-IMG', 40.0, 66.1, 'done'),
        ('MM-Vet', None, 31.1, 'absent (data/eval/mm-vet/mm-vet.json)')]
    table = (tmp_path / 'suite/suite.md').read_text().splitlines()
    assert table[2] == '| MMBench | `mmbench/accuracy` | 12.5 | 64.3 | done |'
    assert table[4].startswith('| MM-Vet | `mm-vet/total` | — | 31.1 | '
                               'absent')
    assert json.loads((tmp_path / 'suite/suite.json').read_text()) == rows


def test_metric_mean_and_multi_process_command():
    read_metric = run_suite_module.read_metric
    metrics = {'pope/adversarial/f1': 80.0, 'pope/popular/f1': 86.0,
               'pope/random/f1': 89.0, 'pope/f1': 1.0}
    assert read_metric(metrics, r'mean:^pope/(adversarial|popular|random)'
                       r'/f1$') == pytest.approx(85.0)
    assert read_metric(metrics, 'pope/accuracy') is None
    command = run_suite_module.test_command(SUITE[0], 'c.pth', 'w', True, 4,
                                            ['a=1'], 29501)
    assert command[1:5] == ['-m', 'torch.distributed.run',
                            '--nproc_per_node=4', '--master_port=29501']
    assert command[-2:] == ['--launcher', 'pytorch']
    assert ['--resume', '--cfg-options', 'a=1'] == \
        command[command.index('--resume'):command.index('--resume') + 3]


def test_suite_from_a_config_file(tmp_path):
    path = tmp_path / 'my_suite.py'
    path.write_text("benchmarks = [dict(name='X', config='x.py', "
                    "metric='a/b', published=None)]\n")
    assert run_suite_module.load_suite(str(path)) == [
        Benchmark('X', 'x.py', 'a/b', None)]
    path.write_text("benchmarks = [dict(name='X', config='x.py')]\n")
    with pytest.raises(ValueError, match='benchmark 0: .*metric'):
        run_suite_module.load_suite(str(path))
    with pytest.raises(ValueError, match='unknown suite'):
        run_suite_module.load_suite('llava-9')


# ---- The suite on the demo model (slow: two tools/test.py runs) ----------
DEMO_META_KEYS = ('sample_id', 'question_id', 'image_id', 'img_path',
                  'prompt', 'category', 'l2_category', 'gt_answer',
                  'options', 'question', 'num_choices')


def demo_config(folder: Path, name: str, dataset: str, evaluator: str) -> str:
    """A demo-model test config for one benchmark's dataset and metric."""
    path = folder / f'{name}.py'
    path.write_text(
        f"_base_ = ['{CONFIGS / 'llava-tiny_demo_vqa.py'}']\n"
        'test_pipeline = [*_base_.test_pipeline[:-1], dict(type='
        f"'PackLLaVAInputs', meta_keys={DEMO_META_KEYS!r})]\n"
        f'test_dataloader = dict(dataset=dict(_delete_=True, {dataset}, '
        'pipeline=test_pipeline))\n'
        f'test_evaluator = dict(_delete_=True, {evaluator})\n')
    return str(path)


def png_base64(colour) -> str:
    buffer = io.BytesIO()
    Image.new('RGB', (64, 64), colour).save(buffer, format='PNG')
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope='module')
def demo_checkpoint(demo_workspace) -> str:
    """A random demo model saved as an mmllava checkpoint."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint

    from mmllava.registry import MODELS
    path = demo_workspace / 'suite_demo_model.pth'
    if not path.exists():
        cwd = os.getcwd()
        os.chdir(demo_workspace)
        try:
            torch.manual_seed(0)
            model = MODELS.build(Config.fromfile(
                str(CONFIGS / 'llava-tiny_demo_vqa.py')).model)
        finally:
            os.chdir(cwd)
        save_checkpoint(model.state_dict(), str(path))
    return str(path)


@pytest.mark.slow
def test_suite_table_on_the_demo_model(demo_workspace, demo_checkpoint,
                                       tmp_path):
    data = demo_workspace / 'data/eval'
    (data / 'mmbench').mkdir(parents=True, exist_ok=True)
    with open(data / 'mmbench/dev.tsv', 'w', newline='') as file:
        writer = csv.writer(file, delimiter='\t')
        writer.writerow(['index', 'question', 'hint', 'A', 'B', 'C', 'D',
                         'answer', 'category', 'image', 'l2-category'])
        for index, (colour, answer) in enumerate([((255, 0, 0), 'A'),
                                                  ((0, 0, 255), 'B')]):
            writer.writerow([index, 'What colour is the image?', '', 'red',
                             'blue', '', '', answer, 'colour',
                             png_base64(colour), 'attribute'])
            writer.writerow([index + 1_000_000, 'What colour is the image?',
                             '', 'blue', 'red', '', '', 'AB'[answer == 'A'],
                             'colour', str(index), 'attribute'])
    (data / 'seed').mkdir(exist_ok=True)
    Image.new('RGB', (64, 64), (0, 255, 0)).save(data / 'seed/g.png')
    (data / 'seed/SEED-Bench.json').write_text(json.dumps(dict(
        question_type={'Instance Attributes': 3}, questions=[dict(
            question_id='1', question='What colour?', choice_a='green',
            choice_b='red', choice_c='blue', choice_d='black', answer='A',
            question_type_id=3, data_id='g.png', data_type='image')])))
    suite = tmp_path / 'demo_suite.py'
    benchmarks = [
        dict(name='MMBench', metric='mmbench/accuracy', published=64.3,
             config=demo_config(tmp_path, 'demo_mmbench', "type="
                                "'MMBenchDataset', data_file='data/eval/"
                                "mmbench/dev.tsv'", "type='MMBenchMetric'")),
        dict(name='SEED-IMG', metric='seed/accuracy', published=66.1,
             config=demo_config(tmp_path, 'demo_seed', "type="
                                "'SEEDBenchDataset', data_file='data/eval/"
                                "seed/SEED-Bench.json', image_folder='data/"
                                "eval/seed'", "type='MultipleChoiceAccuracy'"
                                ", prefix='seed'")),
        dict(name='MM-Vet', metric='mm-vet/total', published=31.1,
             config=str(CONFIGS / 'llava-1.5-7b_mmvet.py')),
    ]
    suite.write_text(f'benchmarks = {benchmarks!r}\n')
    command = [sys.executable, str(REPO / 'tools/eval/run_suite.py'),
               demo_checkpoint, '--suite', str(suite), '--work-dir',
               str(tmp_path / 'suite')]
    result = subprocess.run(command, cwd=demo_workspace, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]
    assert 'MM-Vet: skipped, no data/eval/mm-vet/mm-vet.json' in \
        result.stdout
    rows = json.loads((tmp_path / 'suite/suite.json').read_text())
    assert [row['status'] for row in rows][:2] == ['done', 'done']
    # Four MMBench rows answered, two questions scored; one SEED question.
    answers = (tmp_path / 'suite/MMBench/demo_mmbench_answers.jsonl'
               ).read_text().splitlines()
    assert sorted(json.loads(line)['question_id'] for line in answers) == \
        [0, 1, 1_000_000, 1_000_001]
    assert rows[0]['value'] in (0.0, 50.0, 100.0)
    assert rows[1]['value'] in (0.0, 100.0)
    print((tmp_path / 'suite/suite.md').read_text())
    # A rerun reads the finished benchmarks and runs nothing.
    again = subprocess.run(command, cwd=demo_workspace, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=300)
    assert again.stdout.count('done before') == 2, again.stdout[-2000:]
