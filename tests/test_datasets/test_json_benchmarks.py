"""``mmllava/datasets/json_benchmarks.py``: MM-Vet, SEED-Bench and Q-Bench
files in their distributed layouts, rendered as LLaVA's question files."""
import json

import pytest

from mmllava.datasets.json_benchmarks import (MMVetDataset, QBenchDataset,
                                              SEEDBenchDataset)


def write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_mmvet(tmp_path):
    path = write(tmp_path / 'mm-vet.json', {
        'v1_0': dict(imagename='v1_0.png', capability=['ocr', 'math'],
                     question='What is x?', answer='-1<AND>-5'),
        'v1_1': dict(imagename='v1_1.jpg', capability=['rec'],
                     question='What is it?', answer='cat')})
    dataset = MMVetDataset(path, image_folder=str(tmp_path / 'images'))
    first = dataset.get_data_info(0)
    assert (first['question_id'], first['prompt'], first['gt_answer'],
            first['capability']) == ('v1_0', 'What is x?', '-1<AND>-5',
                                     ['ocr', 'math'])
    assert first['conversations'][0]['value'] == '<image>\nWhat is x?'
    assert first['img_path'] == str(tmp_path / 'images' / 'v1_0.png')


def test_seed_image_questions_only(tmp_path):
    question = dict(question='How many dogs?', choice_a='1', choice_b='2',
                    choice_c='3', choice_d='4', answer='B',
                    question_type_id=5)
    path = write(tmp_path / 'SEED-Bench.json', dict(
        question_type={'Instance Counting': 5},
        questions=[dict(question, question_id='101', data_id='a/1.jpg',
                        data_type='image'),
                   dict(question, question_id='102', data_id='v.mp4',
                        data_type='video')]))
    dataset = SEEDBenchDataset(path, image_folder='img')
    assert len(dataset) == 1
    info = dataset.get_data_info(0)
    # LLaVA's llava-seed-bench.jsonl layout.
    assert info['prompt'] == (
        'How many dogs?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer with the option\'s '
        'letter from the given choices directly.')
    assert (info['gt_answer'], info['category'], info['img_path']) == \
        ('B', 'Instance Counting', 'img/a/1.jpg')


def test_qbench(tmp_path):
    path = write(tmp_path / 'llvisionqa_dev.json', [
        dict(img_path='00001.jpg', question='Is the image blurry?',
             candidates=['Yes', 'No'], correct_ans='No', type='yes-or-no',
             concern='distortion')])
    info = QBenchDataset(path, image_folder='q').get_data_info(0)
    # LLaVA's model_vqa_qbench.py, English.
    assert info['prompt'] == ('Is the image blurry?\nChoose between one of '
                              'the options as follows:\nA. Yes\nB. No\n')
    assert (info['gt_answer'], info['options'], info['category'],
            info['concern']) == ('B', dict(A='Yes', B='No'), 'yes-or-no',
                                 'distortion')


@pytest.mark.parametrize('cls, data, match', [
    (MMVetDataset, {'v1_0': dict(imagename='a.png', question='Q')},
     "question 'v1_0': no 'capability', 'answer'"),
    (SEEDBenchDataset, dict(questions=[]), "the file: no 'question_type'"),
    (QBenchDataset, [dict(img_path='a', question='Q', candidates=['x', 'y'],
                          correct_ans='z')],
     "question 0: correct_ans 'z' is not a candidate"),
])
def test_faults_are_named(tmp_path, cls, data, match):
    with pytest.raises(ValueError, match=match):
        cls(write(tmp_path / 'f.json', data), image_folder='')
