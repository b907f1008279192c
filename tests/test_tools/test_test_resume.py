"""``tools/test.py --resume`` after a SIGKILL part way through the demo VQA
test: the resumed run generates only what the killed one had not saved,
and ends with the answers and metrics of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mmllava.testing.timeouts import scaled_timeout


REPO = Path(__file__).resolve().parents[2]
TEST = REPO / 'tools/test.py'
VQA_CONFIG = REPO / 'configs/llava/llava-tiny_demo_vqa.py'
PLUGINS = Path(__file__).resolve().parent / 'eval_kill_plugins'
TIMEOUT = 300
NUM_QUESTIONS, BATCH_SIZE, KILL_AFTER = 8, 2, 2
# Few questions and short answers keep the three runs quick: 4 batches.
OPTIONS = (f'test_dataloader.dataset.indices={NUM_QUESTIONS}',
           f'test_dataloader.batch_size={BATCH_SIZE}',
           'model.generation_cfg.max_new_tokens=4')
KILL_OPTIONS = ('custom_imports.imports=[kill_after_batches]',
                'default_hooks.kill.type=KillAfterBatches',
                f'default_hooks.kill.batches={KILL_AFTER}')
ANSWERS = 'llava-tiny_demo_vqa_answers.jsonl'
METRICS = 'llava-tiny_demo_vqa_answers.metrics.json'


@pytest.fixture(scope='module')
def checkpoint(demo_vqa_checkpoint) -> str:
    """The shared random demo model (conftest.py)."""
    return demo_vqa_checkpoint


def run_test(cwd: Path, checkpoint: str, work_dir: str, *options: str,
             flags: tuple = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, str(TEST), str(VQA_CONFIG), checkpoint,
               '--work-dir', work_dir, *flags, '--cfg-options', *OPTIONS,
               *options]
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        filter(None, [str(PLUGINS), env.get('PYTHONPATH')]))
    return subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=scaled_timeout(TIMEOUT))


def succeeded(run: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert run.returncode == 0, f'exited {run.returncode}:\n' \
        f'{run.stdout[-4000:]}'
    return run


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(demo_workspace,
                                                        checkpoint):
    full = demo_workspace / 'resume_full'
    killed = demo_workspace / 'resume_killed'
    succeeded(run_test(demo_workspace, checkpoint, full.name))

    run = run_test(demo_workspace, checkpoint, killed.name, *KILL_OPTIONS)
    assert run.returncode == -signal.SIGKILL, run.stdout[-4000:]
    assert not (killed / METRICS).exists()
    saved = killed / 'predictions/rank0.jsonl'
    lines = saved.read_text().splitlines()
    # The header, then the two finished batches.
    assert len(lines) == 1 + KILL_AFTER * BATCH_SIZE
    # A kill in the middle of the next write would leave a torn line.
    with open(saved, 'a', encoding='utf-8') as file:
        file.write('{"index": 4, "sample": {"category": "col')

    resumed = succeeded(run_test(demo_workspace, checkpoint, killed.name,
                                 'default_hooks.logger.interval=1',
                                 flags=('--resume', )))
    reused = KILL_AFTER * BATCH_SIZE
    assert f'Reusing {reused} predictions' in resumed.stdout
    assert f'generating the other {NUM_QUESTIONS - reused} ' in resumed.stdout
    # The iteration logs count on from the batches already done.
    total = NUM_QUESTIONS // BATCH_SIZE
    assert f'Epoch(test) [{KILL_AFTER + 1}/{total}]' in resumed.stdout
    assert f'Epoch(test) [{KILL_AFTER}/{total}]' not in resumed.stdout
    assert saved.read_text() == (full / 'predictions/rank0.jsonl').read_text()
    # The whole answer file, answer ids included.
    assert (killed / ANSWERS).read_text() == (full / ANSWERS).read_text()
    answers = [json.loads(line)
               for line in (full / ANSWERS).read_text().splitlines()]
    assert len(answers) == NUM_QUESTIONS
    assert len({answer['text'] for answer in answers}) > 1
    assert json.loads((killed / METRICS).read_text()) == \
        json.loads((full / METRICS).read_text())
