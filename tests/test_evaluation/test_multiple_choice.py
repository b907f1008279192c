"""``mmllava/evaluation/metrics/multiple_choice.py``: SEED-Bench accuracy per
dimension against LLaVA's ``convert_seed_for_submission.py`` (its
``eval_single``, written out below), and Q-Bench's letters read as MMBench
reads them, with the judge behind the replay server."""
import pytest
from mmpretrain.structures import DataSample

from mmllava.registry import METRICS
from mmllava.testing.replay_server import ReplayServer, Reply, by_marker

QUESTION_TYPES = {'Scene Understanding': 1, 'Instance Identity': 2,
                  'Instance Counting': 5}


def official_eval_single(data, results, eval_only_type='image'):
    """``eval_single``: accuracy per question type and in total; a question
    without an answer counts as wrong."""
    type_counts = {}
    correct_counts = {}
    for question_data in data['questions']:
        if eval_only_type is not None and \
                question_data['data_type'] != eval_only_type:
            continue
        data_type = question_data['question_type_id']
        type_counts[data_type] = type_counts.get(data_type, 0) + 1
        try:
            question_id = int(question_data['question_id'])
        except ValueError:
            question_id = question_data['question_id']
        if question_id not in results:
            correct_counts[data_type] = correct_counts.get(data_type, 0)
            continue
        row = results[question_id]
        if row['text'] == question_data['answer']:
            correct_counts[data_type] = correct_counts.get(data_type, 0) + 1
        else:
            correct_counts[data_type] = correct_counts.get(data_type, 0)
    total_count = 0
    total_correct = 0
    per_type = {}
    names = {v: k for k, v in data['question_type'].items()}
    for data_type in sorted(type_counts.keys()):
        per_type[names[data_type]] = \
            correct_counts[data_type] / type_counts[data_type] * 100
        total_count += type_counts[data_type]
        total_correct += correct_counts[data_type]
    return total_correct / total_count * 100, per_type


# (question_id, type id, answer, the model's text)
SEED_CASES = [
    ('1', 1, 'A', 'A'), ('2', 1, 'B', 'B.'), ('3', 1, 'C', ' C'),
    ('4', 2, 'D', 'D'), ('5', 2, 'A', 'a'), ('6', 5, 'B', 'B'),
    ('7', 5, 'C', 'The answer is C'), ('8', 5, 'D', 'D'),
]


def test_seed_accuracy_equals_llava_eval_single():
    data = dict(question_type=QUESTION_TYPES, questions=[
        dict(question_id=qid, question_type_id=type_id, answer=answer,
             data_type='image') for qid, type_id, answer, _ in SEED_CASES]
        + [dict(question_id='99', question_type_id=1, answer='A',
                data_type='video')])
    results = {int(qid): dict(text=text) for qid, _, _, text in SEED_CASES}
    total, per_type = official_eval_single(data, results)
    names = {v: k for k, v in QUESTION_TYPES.items()}
    metric = METRICS.build(dict(type='MultipleChoiceAccuracy',
                                prefix='seed'))
    metric.process({}, [DataSample(metainfo=dict(
        pred_text=text, gt_answer=answer, category=names[type_id]))
        for _, type_id, answer, text in SEED_CASES])
    result = metric.evaluate(len(SEED_CASES))
    assert result == pytest.approx(dict(
        {'seed/accuracy': total, 'seed/questions': 8},
        **{f'seed/{name}': value for name, value in per_type.items()}))
    # Hand count: 1, 4, 6, 8 right.
    assert total == 50.0


def test_qbench_letters_read_as_mmbench_with_the_judge(tmp_path):
    options = dict(A='Yes', B='No')
    three = dict(A='High', B='Medium', C='Low')
    cases = [
        ('A', options, 'A'),             # right
        ('No', options, 'B'),            # option text
        ('B.', options, 'A'),            # wrong letter
        ('Medium or low q1', three, 'B'),  # judge: 'B'
        ('unclear q2', three, 'C'),      # judge never reads: wrong
    ]
    script = {'q1': [Reply('B')], 'q2': [Reply('hmm')]}
    with ReplayServer(by_marker(script, Reply('?'))) as server:
        judge = dict(base_url=server.base_url, model='judge',
                     api_key_env=None, cache_file=str(tmp_path / 'j.jsonl'))
        metric = METRICS.build(dict(type='MultipleChoiceAccuracy',
                                    match='mmbench', judge=judge,
                                    prefix='qbench'))
        metric.process({}, [DataSample(metainfo=dict(
            pred_text=text, gt_answer=answer, options=opts,
            question='How is the quality?', category='what'))
            for text, opts, answer in cases])
        result = metric.evaluate(len(cases))
        # q1 once, q2 three times (the official three tries).
        assert len(server.requests) == 4
    assert result == {'qbench/accuracy': 60.0, 'qbench/questions': 5,
                      'qbench/unread': 1, 'qbench/what': 60.0}


def test_judge_only_with_mmbench_reading():
    with pytest.raises(ValueError, match="match='mmbench'"):
        METRICS.build(dict(type='MultipleChoiceAccuracy', judge=dict(
            base_url='http://x', model='m', cache_file='c.jsonl')))
