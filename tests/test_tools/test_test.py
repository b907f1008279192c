"""``tools/test.py`` on the demo test configs, run as a user runs it.

A tiny random demo model answers the demo's held-out questions
and captions, and questions about real photos: every sample gets exactly one
answer, in dataset order, at any batch size and with two processes.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as photos

from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
TEST = REPO / 'tools/test.py'
VQA_CONFIG = REPO / 'configs/llava/llava-tiny_demo_vqa.py'
CAPTION_CONFIG = REPO / 'configs/llava/llava-tiny_demo_caption.py'
TIMEOUT = 300
PHOTO_QUESTIONS = [
    ('astronaut', 'What is the person wearing?'),
    ('coffee', 'What is in the cup?'),
    ('chelsea', 'What animal is this?'),
    ('rocket', 'Is this a rocket launch?'),
    ('camera', 'What is the man holding?'),
    ('coins', 'How many coins are there in this picture of old coins?'),
    ('hubble_deep_field', 'What is shown?'),
    ('immunohistochemistry', 'Which colour dominates the stained tissue?'),
]


@pytest.fixture(scope='module')
def checkpoint(demo_vqa_checkpoint) -> str:
    """The shared random demo model (conftest.py)."""
    return demo_vqa_checkpoint


@pytest.fixture(scope='module')
def photo_questions(demo_workspace) -> str:
    """A LLaVA question file about real photos of different sizes."""
    folder = demo_workspace / 'data/photos'
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, (name, question) in enumerate(PHOTO_QUESTIONS):
        Image.fromarray(getattr(photos, name)()).save(folder / f'{name}.png')
        lines.append(json.dumps(dict(question_id=f'photo_{index}',
                                     image=f'{name}.png', text=question,
                                     answer='unknown')))
    path = demo_workspace / 'data/photo_questions.jsonl'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def run_test(cwd: Path, config: Path, checkpoint: str, work_dir: str,
             *options: str, processes: int = 1,
             flags: tuple = ()) -> subprocess.CompletedProcess:
    launcher = [sys.executable]
    if processes > 1:
        launcher += ['-m', 'torch.distributed.run',
                     f'--nproc_per_node={processes}',
                     '--standalone']  # a free port, not a fixed one
    command = [*launcher, str(TEST), str(config), checkpoint,
               '--work-dir', work_dir, *flags]
    if processes > 1:
        command += ['--launcher', 'pytorch']
    if options:
        command += ['--cfg-options', *options]
    result = subprocess.run(command, cwd=cwd, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=scaled_timeout(TIMEOUT))
    assert result.returncode == 0, (f'{" ".join(command)} exited '
                                    f'{result.returncode}:\n'
                                    f'{result.stdout[-4000:]}')
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope='module')
def vqa_run(demo_workspace, checkpoint):
    run = run_test(demo_workspace, VQA_CONFIG, checkpoint, 'test_vqa')
    return run, demo_workspace / 'test_vqa'


@pytest.mark.slow
def test_vqa_answers_every_question_once_in_order(demo_workspace, vqa_run):
    _, work_dir = vqa_run
    questions = read_jsonl(demo_workspace / 'data/demo/eval/questions.jsonl')
    answers = read_jsonl(work_dir / 'llava-tiny_demo_vqa_answers.jsonl')
    assert [a['question_id'] for a in answers] == \
        [q['question_id'] for q in questions]
    for answer, question in zip(answers, questions):
        assert set(answer) == {'question_id', 'prompt', 'text', 'answer_id',
                               'model_id', 'metadata'}
        assert answer['prompt'] == question['text'] + \
            '\nAnswer the question using a single word or phrase.'
        assert isinstance(answer['text'], str)
        assert answer['metadata']['gt_answer'] == question['answer']
        assert answer['model_id'] == 'llava-tiny_demo_vqa'


@pytest.mark.slow
def test_vqa_prints_and_saves_the_metric(vqa_run):
    run, work_dir = vqa_run
    metrics = json.loads(
        (work_dir / 'llava-tiny_demo_vqa_answers.metrics.json').read_text())
    accuracy = [key for key in metrics if key.endswith('accuracy')]
    assert accuracy, metrics
    assert 0 <= metrics[accuracy[0]] <= 100
    assert f'{accuracy[0]}: ' in run.stdout


@pytest.mark.slow
def test_caption_writes_coco_results_and_scores(demo_workspace, checkpoint):
    run = run_test(demo_workspace, CAPTION_CONFIG, checkpoint, 'test_caption')
    work_dir = demo_workspace / 'test_caption'
    results = json.loads(
        (work_dir / 'llava-tiny_demo_caption_answers.json').read_text())
    truth = json.loads((demo_workspace / 'data/demo/eval/'
                        'captions_karpathy_test_gt.json').read_text())
    assert [r['image_id'] for r in results] == \
        [image['id'] for image in truth['images']]
    assert all(isinstance(r['caption'], str) for r in results)
    metrics = json.loads(
        (work_dir / 'llava-tiny_demo_caption_answers.metrics.json')
        .read_text())
    assert any('CIDEr' in key for key in metrics), metrics
    assert 'CIDEr' in run.stdout


def photo_answers(demo_workspace, checkpoint, questions, work_dir, *options,
                  processes=1, flags=()) -> list[dict]:
    run_test(demo_workspace, VQA_CONFIG, checkpoint, work_dir,
             f'test_dataloader.dataset.question_file={questions}',
             'test_dataloader.dataset.image_folder=data/photos', *options,
             processes=processes, flags=flags)
    return read_jsonl(demo_workspace / work_dir /
                      'llava-tiny_demo_vqa_answers.jsonl')


@pytest.fixture(scope='module')
def photo_answers_one_by_one(demo_workspace, checkpoint, photo_questions):
    return photo_answers(demo_workspace, checkpoint, photo_questions,
                         'photos_bs1', 'test_dataloader.batch_size=1')


@pytest.mark.slow
def test_batch_of_8_answers_as_batch_of_1(demo_workspace, checkpoint,
                                          photo_questions,
                                          photo_answers_one_by_one):
    batched = photo_answers(demo_workspace, checkpoint, photo_questions,
                            'photos_bs8', 'test_dataloader.batch_size=8')
    texts = [a['text'] for a in photo_answers_one_by_one]
    # The scaled random model answers differently per photo.
    assert len(set(texts)) > 1
    assert [a['text'] for a in batched] == texts


@pytest.mark.distributed
def test_two_processes_answer_each_question_once_in_order(
        demo_workspace, checkpoint, photo_questions,
        photo_answers_one_by_one):
    # 7 questions over 2 ranks: the sampler repeats one to even them out.
    answers = photo_answers(
        demo_workspace, checkpoint, photo_questions, 'photos_2proc',
        'test_dataloader.dataset.indices=7', 'test_dataloader.batch_size=2',
        processes=2)
    assert [a['question_id'] for a in answers] == \
        [f'photo_{index}' for index in range(7)]
    assert [a['text'] for a in answers] == \
        [a['text'] for a in photo_answers_one_by_one[:7]]


@pytest.mark.slow
def test_blind_run_blanks_the_images(demo_workspace, checkpoint,
                                     photo_questions,
                                     photo_answers_one_by_one):
    blind = photo_answers(demo_workspace, checkpoint, photo_questions,
                          'photos_blind', 'test_dataloader.batch_size=8',
                          flags=('--blind', ))
    assert [a['question_id'] for a in blind] == \
        [a['question_id'] for a in photo_answers_one_by_one]
    # Answers depend on the image: blank ones change at least one.
    assert [a['text'] for a in blind] != \
        [a['text'] for a in photo_answers_one_by_one]
