"""``mmllava/evaluation/metrics/mmvet.py`` against MM-Vet's official
``mm-vet_evaluator.py`` (its grading loop and per-capability scores written
out below, one run), the judge behind the replay server; odd replies
included."""
import json
from collections import Counter

import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.mmvet import GRADER_PROMPT, grade
from mmllava.registry import METRICS
from mmllava.testing.replay_server import ReplayServer, Reply, by_marker

# The official prompt, as in the evaluator (checked against ours below).
OFFICIAL_PROMPT_HEAD = (
    'Compare the ground truth and prediction from AI models, to give a '
    'correctness score for the prediction. <AND> in the ground truth means '
    'it is totally right only when all elements in the ground truth are '
    'present in the prediction, and <OR> means it is totally right when any '
    'one element in the ground truth is present in the prediction. The '
    'correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, '
    '0.6, 0.7, 0.8, 0.9, or 1.0 (totally right). Just complete the last '
    'space of the correctness score.\n\nQuestion | Ground truth | '
    'Prediction | Correctness\n--- | --- | --- | ---\n'
    'What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0\n')

# id: (capabilities, question, ground truth, prediction, judge replies)
CASES = {
    'v1_0': (['rec'], 'What is it?', 'cat', 'a cat pred-a', ['0.8']),
    'v1_1': (['ocr', 'math'], 'x?', '-1<AND>-5', 'x=-1 pred-b',
             ['1.0 because both']),
    'v1_2': (['ocr'], 'Text?', 'stop<OR>halt', 'STOP pred-c',
             ['Score: 0.5', '0.5']),
    # Five unreadable replies: 0 (the official sixth reply is never read).
    'v1_3': (['rec', 'know'], 'Who?', 'Einstein', 'Newton pred-d',
             ['1.5', '-0.1', 'abc', 'x', 'y', '0.9']),
    'v1_4': (['gen'], 'Describe.', 'a dog', 'A dog. pred-e', ['0.3\n']),
    # A leading space: the text before it is '' and does not read.
    'v1_5': (['spat', 'rec'], 'Where?', 'left', 'left pred-f',
             [' 0.7', '0.6']),
}


class FakeOpenAI:
    """``client.chat.completions.create`` answering from CASES."""

    def __init__(self):
        self.calls = []
        self.counts = Counter()
        self.chat = self
        self.completions = self

    def create(self, model, max_tokens, temperature, messages):
        content = messages[0]['content']
        key = next(k for k in CASES if CASES[k][3] in content)
        replies = CASES[key][4]
        reply = replies[min(self.counts[key], len(replies) - 1)]
        self.counts[key] += 1
        self.calls.append((key, temperature, max_tokens, content))

        class Response:
            class choices0:
                class message:
                    pass
            choices = [choices0]
        Response.choices0.message.content = reply
        Response.model = model
        return Response


def official_runs(data, results, prompt, client, gpt_model='gpt-4-0613'):
    """The grading loop of ``runs`` for num_run=1 (rate-limit retries
    aside)."""
    grade_results = {}
    for id, line in data.items():
        model_pred = results[id]
        question = prompt + '\n' + ' | '.join([
            line['question'],
            line['answer'].replace('<AND>', ' <AND> ').replace(
                '<OR>', ' <OR> '), model_pred, ''])
        messages = [{'role': 'user', 'content': question}]
        temperature = 0.0
        response = client.chat.completions.create(
            model=gpt_model, max_tokens=3, temperature=temperature,
            messages=messages)
        content = response.choices[0].message.content
        flag = True
        try_time = 1
        while flag:
            try:
                content = content.split(' ')[0].strip()
                score = float(content)
                if score > 1.0 or score < 0.0:
                    assert False
                flag = False
            except:  # noqa: E722 (the official bare except)
                question = prompt + '\n' + ' | '.join([
                    line['question'],
                    line['answer'].replace('<AND>', ' <AND> ').replace(
                        '<OR>', ' <OR> '), model_pred, '']) + \
                    '\nPredict the correctness of the answer (digit): '
                messages = [{'role': 'user', 'content': question}]
                response = client.chat.completions.create(
                    model=gpt_model, max_tokens=3, temperature=temperature,
                    messages=messages)
                content = response.choices[0].message.content
                try_time += 1
                temperature += 0.5
                if try_time > 5:
                    score = 0.0
                    flag = False
        grade_results[id] = dict(score=[score])
    return grade_results


def official_cap_scores(data, grade_results):
    """``export_result``'s capability table, unrounded, one run."""
    counter = Counter()
    for value in data.values():
        counter.update(set(value['capability']))
    counter['total'] = len(data)
    scores = {k: 0.0 for k in counter}
    for k, v in grade_results.items():
        score = v['score'][0]
        for c in set(data[k]['capability']):
            scores[c] += score
        scores['total'] += score
    return {k: v / counter[k] * 100 for k, v in scores.items()}


def mmvet_data():
    return {key: dict(imagename=f'{key}.png', capability=caps, question=q,
                      answer=a) for key, (caps, q, a, _, _) in CASES.items()}


def test_prompt_is_the_official_one():
    assert GRADER_PROMPT.startswith(OFFICIAL_PROMPT_HEAD)
    assert GRADER_PROMPT.endswith(
        'between the names of the countries and their actual physical '
        'characteristics. | 1.0\n')


def test_grades_and_scores_equal_the_official_evaluator(tmp_path):
    data = mmvet_data()
    results = {key: case[3] for key, case in CASES.items()}
    client = FakeOpenAI()
    official = official_runs(data, results, GRADER_PROMPT, client)
    script = {case[3]: [Reply(r) for r in case[4]]
              for case in CASES.values()}
    with ReplayServer(by_marker(script, Reply('?'))) as server:
        judge = dict(base_url=server.base_url, model='gpt-4-0613',
                     api_key_env=None, cache_file=str(tmp_path / 'g.jsonl'))
        metric = METRICS.build(dict(type='MMVetMetric', judge=judge))
        metric.process({}, [DataSample(metainfo=dict(
            question_id=key, question=data[key]['question'],
            gt_answer=data[key]['answer'], pred_text=results[key],
            capability=data[key]['capability'])) for key in data])
        scores = metric.evaluate(len(data))
        requests = server.requests
        # Rerun: every reply comes from the cache.
        again = grade({key: dict(question=data[key]['question'],
                                 answer=data[key]['answer'],
                                 prediction=results[key]) for key in data},
                      judge)
        assert len(server.requests) == len(requests)
    assert {k: v['score'][0] for k, v in official.items()} == \
        {k: v['score'] for k, v in again.items()} == dict(
            v1_0=0.8, v1_1=1.0, v1_2=0.5, v1_3=0.0, v1_4=0.3, v1_5=0.6)
    expected = official_cap_scores(data, official)
    assert {k[len('mm-vet/'):]: v for k, v in scores.items()
            if k not in ('mm-vet/graded', 'mm-vet/grade_failed')} == \
        pytest.approx(expected)
    assert scores['mm-vet/grade_failed'] == 1
    # The same requests as the official loop (its sixth, unread one
    # aside): text, temperature and max_tokens.
    official_calls = Counter((c[3], c[1], c[2]) for c in client.calls
                             if not (c[0] == 'v1_3' and c[1] == 2.0))
    ours = Counter((r.body['messages'][-1]['content'],
                    r.body['temperature'], r.body['max_tokens'])
                   for r in requests)
    assert ours == official_calls


def test_results_file_without_judge(tmp_path):
    out = tmp_path / 'new_folder' / 'mmvet_results.json'
    metric = METRICS.build(dict(type='MMVetMetric', results_file=str(out)))
    metric.process({}, [DataSample(metainfo=dict(
        question_id='v1_0', question='Q', gt_answer='A', pred_text='ans',
        capability=['rec']))])
    assert metric.evaluate(1) == {}
    # The input of the official evaluator (LLaVA's convert_mmvet_for_eval).
    assert json.loads(out.read_text()) == {'v1_0': 'ans'}


def test_needs_a_judge_or_a_results_file():
    with pytest.raises(ValueError, match='needs a judge'):
        METRICS.build(dict(type='MMVetMetric'))
