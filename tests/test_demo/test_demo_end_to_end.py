"""``tools/run_demo.py`` end to end, as a user runs it in an empty folder:
data and weights made, both stages trained, loss curves and image gains
drawn, the model tested beside its blind baseline; then the demo resumed
(finished stages kept) and stage 1 resumed for one more epoch.

What the demo must show: stage 2's last logged loss below half of its first,
and a model that uses its images (a held-out loss clearly lower with each
scene's own image than with shuffled ones, and test answers above the blind
baseline's). Minutes on 2 CPU cores.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import mmengine
import pytest
import torch

from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.plot import find_scalars_files, load_scalars

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STAGE1_CONFIG = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def run(cwd: Path, *command: str,
        timeout: int) -> subprocess.CompletedProcess:
    """Run a repo tool; stdout and stderr together."""
    return subprocess.run([sys.executable, *command], cwd=cwd,
                          env=dict(os.environ), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def check_exit(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (f'{" ".join(result.args)} exited '
                                    f'{result.returncode}:\n'
                                    f'{result.stdout[-4000:]}')


@pytest.fixture(scope='module')
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The folder the demo ran in, and the run."""
    cwd = tmp_path_factory.mktemp('demo_run')
    result = run(cwd, str(REPO / 'tools/run_demo.py'), '--work-dir',
                 'work_dirs', timeout=scaled_timeout(1200))
    return cwd, result


def stage_losses(cwd: Path, stage: str) -> list[float]:
    _, losses = load_scalars(find_scalars_files(cwd / 'work_dirs' / stage))
    assert all(math.isfinite(loss) for loss in losses), (stage, losses)
    return losses


@pytest.mark.slow
def test_demo_makes_its_assets_and_draws_the_curves(demo):
    cwd, result = demo
    check_exit(result)
    for folder in ('tokenizer', 'vision_encoder', 'llm'):
        assert (cwd / 'checkpoints/demo' / folder).is_dir(), folder
    for name in ('pretrain', 'instruct', 'eval'):
        assert (cwd / f'data/demo/{name}.json').is_file(), name
    for figure in ('demo_loss.png', 'demo_predictions.png'):
        with open(cwd / 'work_dirs' / figure, 'rb') as file:
            assert file.read(8) == PNG_SIGNATURE, figure


def test_both_stages_learn(demo):
    cwd, result = demo
    check_exit(result)
    stage1 = stage_losses(cwd, 'llava-tiny_demo_pretrain')
    assert stage1[-1] < stage1[0], stage1
    stage2 = stage_losses(cwd, 'llava-tiny_demo_ft')
    assert stage2[-1] < stage2[0] / 2, (
        f'stage 2 loss {stage2[0]:.3f} -> {stage2[-1]:.3f}: not below half '
        'of the first logged loss')


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_demo_tests_the_model_beside_a_blind_baseline(demo):
    cwd, result = demo
    check_exit(result)
    test_dir = cwd / 'work_dirs/demo_test'
    questions = read_jsonl(cwd / 'data/demo/eval/questions.jsonl')
    for run_name in ('vqa', 'vqa_blind'):
        answers = read_jsonl(test_dir / run_name / 'answers.jsonl')
        assert [a['question_id'] for a in answers] == \
            [q['question_id'] for q in questions]
    captions = json.loads(
        (test_dir / 'caption/answers.json').read_text())
    assert len(captions) == mmengine.Config.fromfile(
        str(STAGE1_CONFIG)).demo.num_eval
    model, blind = (
        json.loads((test_dir / name / 'answers.metrics.json').read_text())
        for name in ('caption', 'caption_blind'))
    assert set(model) >= {'coco-caption/Bleu_4', 'coco-caption/CIDEr'}
    assert set(model) == set(blind)
    table = result.stdout[result.stdout.index('metric '):]
    for row in ('caption BLEU-4', 'caption CIDEr', 'VQA exact match'):
        assert row in table, row
    # One line per question kind.
    kinds = {q['category'] for q in questions}
    assert sum(line.strip().startswith('[') and 'reference:' in line
               for line in table.splitlines()) == len(kinds)


def test_the_trained_model_uses_its_images(demo):
    cwd, result = demo
    check_exit(result)
    files = find_scalars_files(cwd / 'work_dirs/llava-tiny_demo_ft')
    _, gains = load_scalars(files, 'val/image_gain')
    _, blank_gains = load_scalars(files, 'val/image_gain_blank')
    # Held-out answer tokens: nats per token lower with the scene's own
    # image than with another scene's or a blank one.
    assert gains[-1] > 0.1 and blank_gains[-1] > 0.1, (gains, blank_gains)
    assert gains[-1] > gains[0], gains
    _, count_gains = load_scalars(files, 'val/count/image_gain')
    assert count_gains[-1] > 0.1, count_gains
    test_dir = cwd / 'work_dirs/demo_test'
    model, blind = (
        json.loads((test_dir / name / 'answers.metrics.json').read_text())
        for name in ('vqa', 'vqa_blind'))
    assert model['demo-vqa/accuracy'] > blind['demo-vqa/accuracy'] + 5
    assert model['demo-vqa/count/accuracy'] > \
        blind['demo-vqa/count/accuracy'] + 30
    assert 'held-out image gain' in result.stdout


@pytest.mark.slow
def test_resume_keeps_the_finished_stages(demo):
    cwd, result = demo
    check_exit(result)
    checkpoints = sorted((cwd / 'work_dirs').glob('llava-tiny_demo_*/*.pth'))
    before = {path: path.stat().st_mtime_ns for path in checkpoints}
    resumed = run(cwd, str(REPO / 'tools/run_demo.py'), '--work-dir',
                  'work_dirs', '--resume', timeout=scaled_timeout(1200))
    check_exit(resumed)
    assert resumed.stdout.count('finished before, kept (--resume)') == 2
    assert {path: path.stat().st_mtime_ns for path in checkpoints} == before
    assert 'VQA exact match' in resumed.stdout


@pytest.mark.slow
def test_stage1_resumes_for_one_more_epoch(demo):
    cwd, result = demo
    check_exit(result)
    epochs = mmengine.Config.fromfile(str(STAGE1_CONFIG)).train_cfg.max_epochs
    work_dir = cwd / 'work_dirs/llava-tiny_demo_pretrain'

    def last_iteration() -> int:
        pointer = (work_dir / 'last_checkpoint').read_text().strip()
        return torch.load(pointer, map_location='cpu',
                          weights_only=True)['meta']['iter']

    trained = last_iteration()
    resumed = run(cwd, str(REPO / 'tools/train.py'), str(STAGE1_CONFIG),
                  '--work-dir', str(work_dir), '--resume', '--cfg-options',
                  f'train_cfg.max_epochs={epochs + 1}',
                  timeout=scaled_timeout(600))
    check_exit(resumed)
    # From the end-of-epoch checkpoint exactly one more epoch is trained.
    assert last_iteration() == trained // epochs * (epochs + 1)
