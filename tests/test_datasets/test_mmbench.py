"""``mmllava/datasets/mmbench.py``: MMBench's tsv as distributed (pandas
writes it: empty cells for absent options and hints, base64 images, circular
copies naming the row that holds their image), read into LLaVA's prompts."""
import base64
import csv
import io

import pytest
from PIL import Image

from mmllava.datasets.mmbench import MMBenchDataset

COLUMNS = ['index', 'question', 'hint', 'A', 'B', 'C', 'D', 'answer',
           'category', 'image', 'source', 'l2-category', 'comment', 'split']


def png_base64(colour) -> str:
    buffer = io.BytesIO()
    Image.new('RGB', (80, 64), colour).save(buffer, format='PNG')
    return base64.b64encode(buffer.getvalue()).decode()


def write_tsv(path, rows):
    with open(path, 'w', encoding='utf-8', newline='') as file:
        writer = csv.writer(file, delimiter='\t')
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([row.get(column, '') for column in COLUMNS])
    return str(path)


RED, BLUE = png_base64((255, 0, 0)), png_base64((0, 0, 255))
ROWS = [
    dict(index=0, question='What colour is it?', hint='A flag.\nOld.',
         A='red', B='blue', C='green', answer='A', category='colour',
         image=RED, **{'l2-category': 'attribute'}, split='dev'),
    # The circular copy: options rotated, the image named by index.
    dict(index=1000000, question='What colour is it?', hint='A flag.\nOld.',
         A='blue', B='green', C='red', answer='C', category='colour',
         image='0', **{'l2-category': 'attribute'}, split='dev'),
    dict(index=3, question='图里有几个？', hint='nan', A='1', B='2',
         answer='B', category='count', image=BLUE, split='dev'),
]


def test_rows_become_llava_prompts(tmp_path):
    dataset = MMBenchDataset(write_tsv(tmp_path / 'dev.tsv', ROWS))
    assert len(dataset) == 3
    first = dataset.get_data_info(0)
    letter = "Answer with the option's letter from the given choices " \
        'directly.'
    # LLaVA's model_vqa_mmbench.py: hint, question, one line per option.
    assert first['prompt'] == ('A flag.\nOld.\nWhat colour is it?\nA. red\n'
                               f'B. blue\nC. green\n{letter}')
    assert first['conversations'][0]['value'] == '<image>\n' + \
        first['prompt']
    assert first['options'] == dict(A='red', B='blue', C='green')
    assert (first['gt_answer'], first['category'], first['l2_category'],
            first['question_id']) == ('A', 'colour', 'attribute', 0)
    assert first['img'].getpixel((0, 0)) == (255, 0, 0)
    copy = dataset.get_data_info(1)
    assert copy['question_id'] == 1000000 and copy['gt_answer'] == 'C'
    assert copy['img'].getpixel((0, 0)) == (255, 0, 0)
    third = dataset.get_data_info(2)
    # 'nan' hint: none; two options only.
    assert third['prompt'].startswith('图里有几个？\nA. 1\nB. 2\n')
    assert 'l2_category' not in third


def test_chinese_prompt(tmp_path):
    dataset = MMBenchDataset(write_tsv(tmp_path / 'dev.tsv', ROWS[2:]),
                             lang='cn')
    assert dataset.get_data_info(0)['prompt'].endswith('\nB. 2\n请直接回答选项字母。')


def test_expand_rotations_adds_the_missing_copies(tmp_path):
    dataset = MMBenchDataset(write_tsv(tmp_path / 'dev.tsv', ROWS),
                             expand_rotations=True)
    infos = {dataset.get_data_info(i)['question_id']: dataset.get_data_info(i)
             for i in range(len(dataset))}
    # Question 0 had its first rotation; 2000000 is added. Question 3 (two
    # options) gets 1000003.
    assert sorted(infos) == [0, 3, 1000000, 1000003, 2000000]
    assert infos[2000000]['options'] == dict(A='green', B='red', C='blue')
    assert infos[2000000]['gt_answer'] == 'B'
    assert infos[1000003]['options'] == dict(A='2', B='1')
    assert infos[1000003]['gt_answer'] == 'A'
    assert infos[1000003]['img'].getpixel((0, 0)) == (0, 0, 255)


def test_faults_are_named(tmp_path):
    with pytest.raises(ValueError, match='row 0 .*fewer than 2 options'):
        MMBenchDataset(write_tsv(tmp_path / 'a.tsv', [dict(
            index=1, question='Q', A='x', image=RED)]))
    with pytest.raises(ValueError, match="names the image of row '5'"):
        MMBenchDataset(write_tsv(tmp_path / 'b.tsv', [dict(
            index=1000001, question='Q', A='x', B='y', image='5')]))
    dataset = MMBenchDataset(write_tsv(tmp_path / 'c.tsv', [dict(
        index=1, question='Q', A='x', B='y', image='x' * 100)]))
    with pytest.raises(OSError, match='sample index 1: cannot decode'):
        dataset.get_data_info(0)
    with pytest.raises(FileNotFoundError, match='MMBench tsv not found'):
        MMBenchDataset(str(tmp_path / 'missing.tsv'))
