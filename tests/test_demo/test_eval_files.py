"""``mmllava/testing/demo/eval_files.py`` and ``predictions.join_answers``:
the demo's held-out scenes in benchmark layouts, read by the real
datasets."""
import json

import pytest

from mmllava.registry import DATASETS
from mmllava.testing.demo.eval_files import image_id_of, write_eval_files
from mmllava.testing.demo.predictions import join_answers
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset


@pytest.fixture(scope='module')
def eval_files(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo_eval')
    generate_demo_dataset(root, num_train=1, num_eval=3, image_size=48)
    return root, write_eval_files(str(root / 'eval.json'),
                                  str(root / 'eval'))


def test_image_ids_come_from_file_names():
    assert image_id_of('images/eval_00012.png') == 12
    assert image_id_of('val2014/COCO_val2014_000000391895.jpg') == 391895


def test_files_match_the_eval_records(eval_files):
    root, written = eval_files
    records = json.loads((root / 'eval.json').read_text())
    captions = [r for r in records if r['type'] == 'caption']
    questions = [r for r in records if r['type'] != 'caption']
    assert written['num_images'] == len(captions) == 3
    assert written['num_questions'] == len(questions)
    truth = json.loads((root / 'eval/captions_karpathy_test_gt.json')
                       .read_text())
    assert [a['caption'] for a in truth['annotations']] == \
        [r['answer'] for r in captions]
    lines = (root / 'eval/questions.jsonl').read_text().splitlines()
    first = json.loads(lines[0])
    assert '<image>' not in first['text']
    assert 'single word' not in first['text']
    assert first['answer'] == questions[0]['answer']
    assert first['category'] == questions[0]['type']


def test_datasets_read_them(eval_files):
    root, written = eval_files
    captions = DATASETS.build(dict(
        type='COCOKarpathyCaptionDataset', data_file=written['captions'],
        image_folder=str(root), prompt='Caption it.', pipeline=[]))
    assert [captions.get_data_info(i)['image_id'] for i in range(3)] == \
        [0, 1, 2]
    questions = DATASETS.build(dict(
        type='LLaVAQuestionDataset', question_file=written['questions'],
        image_folder=str(root), prompt_suffix='\nShort answer.'))
    info = questions.get_data_info(0)
    assert info['gt_answer'] and info['category']
    assert info['prompt'].endswith('\nShort answer.')


def test_join_answers(eval_files, tmp_path):
    root, written = eval_files
    questions = [json.loads(line) for line in
                 (root / 'eval/questions.jsonl').read_text().splitlines()]
    answers = tmp_path / 'answers.jsonl'
    answers.write_text('\n'.join(json.dumps(dict(
        question_id=q['question_id'], text=q['answer'].upper() if index
        else 'wrong')) for index, q in enumerate(questions)) + '\n')
    results = join_answers(str(answers), written['questions'], str(root))
    assert [r['correct'] for r in results] == \
        [False] + [True] * (len(questions) - 1)
    assert results[0]['img_path'] == str(root / questions[0]['image'])
    assert results[0]['kind'] == questions[0]['category']
