"""``mmllava/evaluation/answer_files.py``: LLaVA answer jsonl and COCO
caption results, in dataset order, the sampler's padding dropped."""
import json

import pytest
from mmpretrain.structures import DataSample

from mmllava.registry import METRICS


def samples(count):
    return [DataSample(metainfo=dict(
        sample_id=f'q{index}', question_id=index, image_id=100 + index,
        prompt=f'Question {index}?', pred_text=f'answer {index}',
        gt_answers=['a'] * 10 if index % 2 else None,
        category='color')) for index in range(count)]


def test_llava_jsonl_has_the_official_fields(tmp_path):
    out = tmp_path / 'answers/vqa.jsonl'
    writer = METRICS.build(dict(type='AnswerFileWriter', out_file=str(out),
                                model_id='llava-test'))
    writer.process({}, samples(3))
    assert writer.evaluate(3) == {}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line['question_id'] for line in lines] == [0, 1, 2]
    assert lines[1] == dict(
        question_id=1, prompt='Question 1?', text='answer 1',
        answer_id=lines[1]['answer_id'], model_id='llava-test',
        metadata=dict(gt_answers=['a'] * 10, category='color'))
    assert 'gt_answers' not in lines[0]['metadata']
    assert len({line['answer_id'] for line in lines}) == 3


def test_padding_repeats_are_dropped(tmp_path):
    out = tmp_path / 'vqa.jsonl'
    writer = METRICS.build(dict(type='AnswerFileWriter', out_file=str(out)))
    # The distributed sampler evens out ranks by repeating the first samples;
    # evaluate(size) keeps the dataset's size.
    writer.process({}, samples(3) + samples(1))
    writer.evaluate(3)
    assert len(out.read_text().splitlines()) == 3


def test_coco_captions(tmp_path):
    out = tmp_path / 'captions.json'
    writer = METRICS.build(dict(type='AnswerFileWriter', out_file=str(out),
                                file_format='coco_captions'))
    writer.process({}, samples(2))
    writer.evaluate(2)
    assert json.loads(out.read_text()) == [
        dict(image_id=100, caption='answer 0'),
        dict(image_id=101, caption='answer 1')]


def test_unknown_format_fails():
    with pytest.raises(ValueError, match='file_format'):
        METRICS.build(dict(type='AnswerFileWriter', out_file='x',
                           file_format='csv'))
