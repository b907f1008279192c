"""``mmllava/evaluation/metrics/mmbench.py`` against the official MMBench
evaluator (VLMEvalKit's ``multiple_choice.py``, which holds OpenCompass'
MMBench evaluation), written out below as it is, on hand cases; the judge
runs behind the replay server."""
import copy
import csv
import re
import string

import pytest
from mmpretrain.structures import DataSample

from mmllava.evaluation.metrics.mmbench import circular_hits, write_submission
from mmllava.registry import METRICS
from mmllava.testing.replay_server import ReplayServer, Reply


# ---- The official evaluator, transcribed (pandas rows -> dicts) ----------
def official_can_infer_option(answer, choices):
    if 'Failed to obtain answer via API' in answer:
        return False
    reject_to_answer = [
        "Sorry, I can't help with images of people yet.",
        "I can't process this file.",
        "I'm sorry, but without the image provided",
        'Cannot determine the answer'
    ]
    for err in reject_to_answer:
        if err in answer:
            return 'Z'

    def count_choice(splits, choices, prefix='', suffix=''):
        cnt = 0
        for c in choices:
            if prefix + c + suffix in splits:
                cnt += 1
        return cnt

    answer_mod = copy.copy(answer)
    chars = '.()[],:;!*#{}'
    for c in chars:
        answer_mod = answer_mod.replace(c, ' ')
    splits = [x.strip() for x in answer_mod.split()]
    count = count_choice(splits, choices)
    if count == 1:
        for ch in choices:
            if ch in splits:
                return ch
    elif count == 0 and count_choice(splits, {'Z', ''}) == 1:
        return 'Z'
    return False


def official_can_infer_text(answer, choices):
    answer = answer.lower()
    choices = dict(choices)
    for k in choices:
        assert k in string.ascii_uppercase
        choices[k] = str(choices[k]).lower()
    cands = []
    for k in choices:
        if choices[k] in answer:
            cands.append(k)
    if len(cands) == 1:
        return cands[0]
    return False


def official_can_infer(answer, choices):
    answer = str(answer)
    copt = official_can_infer_option(answer, choices)
    return copt if copt else official_can_infer_text(answer, choices)


def official_build_prompt(question, options, prediction):
    tmpl = (
        'You are an AI assistant who will help me to match '
        'an answer with several options of a single-choice question. '
        'You are provided with a question, several options, and an answer, '
        'and you need to find which option is most similar to the answer. '
        'If the meaning of all options are significantly different from the answer, output Z. '  # noqa: E501
        'Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n'  # noqa: E501
        'Example 1: \n'
        'Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n'  # noqa: E501
        'Answer: a cute teddy bear\nYour output: A\n'
        'Example 2: \n'
        'Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n'  # noqa: E501
        'Answer: Spider\nYour output: Z\n'
        'Example 3: \n'
        'Question: {}?\nOptions: {}\nAnswer: {}\nYour output: '
    )
    return tmpl.format(question, options, prediction)


def official_build_prompt_cn(question, options, prediction):
    tmpl = (
        '你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。'
        '你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。'
        '如果所有选项的意义都与答案显著不同，则输出 Z。'
        '你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。'
        '例 1:'
        '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n'  # noqa: E501
        '例 2: \n'
        '问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n'
        '例 3: \n'
        '问题: {}?\n选项: {}\n答案: {}\n输出: '
    )
    return tmpl.format(question, options, prediction)


def official_build_choices(item):
    ret = {}
    for ch in string.ascii_uppercase:
        if ch in item and item[ch] is not None:
            ret[ch] = item[ch]
    return ret


def official_build_option_str(option_dict):
    s = 'There are several options: \n'
    for c, content in option_dict.items():
        s += f'{c}. {content}\n'
    return s


def official_cn_string(s):
    return re.compile('[\u4e00-\u9fa5]').search(s) is not None


def official_extract_answer_from_item(model, item):
    choices = official_build_choices(item)
    option_str = official_build_option_str(choices)
    if official_cn_string(item['question']):
        prompt = official_build_prompt_cn(item['question'], option_str,
                                          item['prediction'])
    else:
        prompt = official_build_prompt(item['question'], option_str,
                                       item['prediction'])
    retry = 3
    ret = official_can_infer(item['prediction'], choices)
    if ret:
        return dict(opt=ret, log=item['prediction'])
    while retry:
        ans = model.generate(prompt)
        ret = official_can_infer(ans, choices)
        if ret:
            return dict(opt=ret, log=ans)
        retry -= 1
        if retry == 0:
            # The official code draws a random letter here; the cases
            # below that reach it are checked apart.
            return dict(opt='RANDOM', log='failed')


def official_prefetch_sub_data(sub_data, answer_map, verbose=False):
    lt = len(sub_data)
    GT, PRED = [], []
    for i in range(lt):
        item = sub_data[i]
        idx = item['index']
        GT.append(answer_map[idx])
        PRED.append(official_can_infer(item['prediction'],
                                       official_build_choices(item)))
        if PRED[-1] and (GT[-1] != PRED[-1]):
            return dict(hit=0, log='')
    flag = True
    for g, p in zip(GT, PRED):
        if g != p:
            flag = False
    ret = (dict(hit=1, log=''), ) if flag else (None, )
    ret = ret + (GT, PRED) if verbose else ret
    return ret if len(ret) > 1 else ret[0]


def official_eval_sub_data(model, sub_data, answer_map):
    res, GT, PRED = official_prefetch_sub_data(sub_data, answer_map,
                                               verbose=True)
    if res is not None:
        return res
    lt = len(sub_data)
    for i in range(lt):
        if PRED[i]:
            continue
        res = official_extract_answer_from_item(model, sub_data[i])
        PRED[i] = res['opt']
        if PRED[i] != GT[i]:
            return dict(hit=0, log='')
    return dict(hit=1, log='')


def official_hits(rows, model):
    """``multiple_choice_eval`` and ``eval_data_groups``: the main rows
    (index < 1e6), each with the rows ``index % 1e6 == idx``, sorted by
    index."""
    data = sorted(rows, key=lambda row: row['index'])
    answer_map = {row['index']: row['answer'] for row in data}
    hits = {}
    for item_main in [row for row in data if row['index'] < int(1e6)]:
        idx = item_main['index']
        sub_data = [row for row in data if row['index'] % int(1e6) == idx]
        # eval_data_groups: the prefetch decides, or the judge reads the
        # rest ('exact_matching' without a judge: wrong).
        pf = official_prefetch_sub_data(sub_data, answer_map)
        if pf:
            hits[idx] = pf['hit']
        elif model is None:
            hits[idx] = 0
        else:
            hits[idx] = official_eval_sub_data(model, sub_data,
                                               answer_map)['hit']
    return hits


# ---- Hand cases ----------------------------------------------------------
def question(index, text, options, answer, predictions, category='cat-x',
             l2='l2-x'):
    """The rows of one question: rotation k holds options[k:] +
    options[:k] (the official copies' layout) and the k-th prediction."""
    rows = []
    letters = 'ABCD'[:len(options)]
    for k, prediction in enumerate(predictions):
        rotated = options[k:] + options[:k]
        rows.append(dict(
            index=index + k * 1_000_000, question=text,
            prediction=prediction, category=category, l2_category=l2,
            answer=letters[rotated.index(options[letters.index(answer)])],
            **dict(zip(letters, rotated))))
    return rows


FOUR = ['teddy bear', 'rabbit', 'cat', 'dog']
ROWS = [
    # Letters in every form: right in all rotations.
    *question(1, 'What is it', FOUR, 'A',
              ['A', 'D.', '(C) cat', 'The answer is B']),
    # One rotation wrong: the question is wrong.
    *question(2, 'What is it', FOUR, 'B', ['B', 'A', 'A', 'A']),
    # Option text instead of a letter, case-insensitive.
    *question(3, 'What is it', FOUR, 'C',
              ['It is a Cat', 'B', 'A', 'D']),
    # "A" as an article reads as the letter A (the answer is C): wrong.
    *question(4, 'What is it', FOUR, 'C', ['A cat', 'B', 'A', 'D']),
    # Two letters: the text does not decide either; the judge does.
    *question(5, 'What animal', FOUR, 'D',
              ['B or C judge-me-5', 'C', 'B', 'A']),
    # A refusal reads as Z: wrong without asking the judge.
    *question(6, 'What is it', FOUR, 'A',
              ['Cannot determine the answer', 'D', 'C', 'B']),
    # Z alone reads as Z.
    *question(7, 'What is it', ['yes', 'no'], 'A', ['Z', 'B']),
    # Wrong in a rotation before the one the judge would read: no judge.
    *question(8, 'What is it', FOUR, 'A',
              ['B', 'both judge-me-8a', 'C', 'B']),
    # The judge first answers without a letter, then rightly.
    *question(9, 'Which colour', ['red', 'green', 'blue'], 'B',
              ['maybe judge-me-9', 'A', 'C']),
    # A Chinese question: the Chinese prompt; the judge answers wrongly.
    *question(10, '图中是什么', ['猫', '狗'], 'A', ['猫和狗 judge-me-10', 'B']),
    # Two options quoted in the text: "cat" and "dog" both appear.
    *question(11, 'What is it', FOUR, 'D',
              ['a cat and a dog judge-me-11', 'C', 'B', 'A']),
]
JUDGE_SCRIPT = {
    'judge-me-5': 'D',
    'judge-me-8a': 'A',
    'judge-me-9': 'I think the second one, B.',
    'judge-me-10': '输出: B',
    'judge-me-11': 'The answer matches D. dog',
}


def scripted(prompt):
    for marker, reply in JUDGE_SCRIPT.items():
        if marker in prompt:
            return reply
    return 'no idea'


class ScriptedModel:
    def generate(self, prompt):
        return scripted(prompt)


def our_rows(rows):
    letters = 'ABCD'
    return [dict(index=row['index'], prediction=row['prediction'],
                 answer=row['answer'], question=row['question'],
                 options={letter: row[letter] for letter in letters
                          if letter in row}) for row in rows]


def test_letter_reading_equals_official_on_odd_answers():
    from mmllava.evaluation.metrics.mmbench import infer_letter
    options = dict(A='teddy bear', B='rabbit', C='cat', D='dog')
    for answer in ['A', 'a', 'A.', '(B)', 'B) rabbit', 'The answer is C',
                   'A cat', 'B or C', 'Z', 'z', 'Cannot determine the answer',
                   'a rabbit', 'RABBIT!', 'cat and dog', 'teddy bear',
                   'I pick D because A is wrong', '', 'D:dog', '*C*',
                   'Option B.', 'B,C', 'AB', "I'm sorry, but without the "
                   'image provided I cannot say']:
        official = official_can_infer(answer, options)
        assert infer_letter(answer, options) == (official or None), answer


def test_circular_hits_equal_official_with_judge(tmp_path):
    with ReplayServer(lambda body, index: Reply(scripted(
            body['messages'][-1]['content']))) as server:
        judge = dict(base_url=server.base_url, model='judge',
                     api_key_env=None, cache_file=str(tmp_path / 'j.jsonl'))
        ours = circular_hits(our_rows(ROWS), judge)
        prompts = [request.body['messages'][-1]['content']
                   for request in server.requests]
    official = official_hits(ROWS, ScriptedModel())
    assert {q: int(h['hit']) for q, h in ours.items()} == official
    assert official == {1: 1, 2: 0, 3: 1, 4: 0, 5: 1, 6: 0, 7: 0, 8: 0,
                        9: 1, 10: 0, 11: 1}
    # The prompts are the official ones, the Chinese one for question 10.
    row10 = ROWS[[r['index'] for r in ROWS].index(10)]
    assert official_build_prompt_cn(
        row10['question'], official_build_option_str(
            official_build_choices(row10)), row10['prediction']) in prompts
    row5 = ROWS[[r['index'] for r in ROWS].index(5)]
    assert official_build_prompt(
        row5['question'], official_build_option_str(
            official_build_choices(row5)), row5['prediction']) in prompts
    # Question 8 is decided by its wrong letter: the judge is not asked.
    assert not any('judge-me-8a' in prompt for prompt in prompts)
    # Question 9: 'maybe' unreadable, the judge's first reply readable.
    assert ours[9]['judged'] == 1 and ours[9]['judge_failed'] == 0


def test_judge_replies_are_cached_and_a_rerun_asks_nothing(tmp_path):
    rows = question(1, 'What is it', FOUR, 'A',
                    ['teddy bear or rabbit', 'D', 'C', 'B'])
    judge_rows = our_rows(rows)
    cache = tmp_path / 'judge.jsonl'
    replies = ['no letter here', 'still none', 'A']
    with ReplayServer(lambda body, index: Reply(replies[index])) as server:
        judge = dict(base_url=server.base_url, model='judge',
                     api_key_env=None, cache_file=str(cache))
        first = circular_hits(judge_rows, judge)
        assert len(server.requests) == 3
        again = circular_hits(judge_rows, judge)
        assert len(server.requests) == 3
    assert first[1]['hit'] and again == first
    assert len(cache.read_text().splitlines()) == 3


def test_a_judge_that_never_reads_is_wrong_and_counted(tmp_path):
    rows = question(1, 'What is it', FOUR, 'A',
                    ['teddy bear or rabbit', 'D', 'C', 'B'])
    with ReplayServer(lambda body, index: Reply('hmm')) as server:
        judge = dict(base_url=server.base_url, model='judge',
                     api_key_env=None, cache_file=str(tmp_path / 'j.jsonl'))
        result = circular_hits(our_rows(rows), judge)
        # The official three tries.
        assert len(server.requests) == 3
    assert result[1] == dict(hit=False, judged=1, judge_failed=1)


def test_exact_matching_without_judge_equals_official():
    ours = circular_hits(our_rows(ROWS), judge=None)
    assert {q: int(h['hit']) for q, h in ours.items()} == \
        official_hits(ROWS, None)


def test_metric_reports_per_category_and_level(tmp_path):
    rows = (question(1, 'Q', FOUR, 'A', ['A', 'D', 'C', 'B'], 'ocr', 'FP')
            + question(2, 'Q', FOUR, 'A', ['A', 'A', 'C', 'B'], 'ocr', 'FP')
            + question(3, 'Q', ['x', 'y'], 'B', ['B', 'A'], 'count', 'CP'))
    metric = METRICS.build(dict(type='MMBenchMetric'))
    metric.process({}, [DataSample(metainfo=dict(
        question_id=row['index'], pred_text=row['prediction'],
        gt_answer=row['answer'], question=row['question'],
        options={k: row[k] for k in 'ABCD' if k in row},
        category=row['category'], l2_category=row['l2_category']))
        for row in rows])
    result = metric.evaluate(len(rows))
    assert result == {
        'mmbench/accuracy': pytest.approx(200 / 3),
        'mmbench/questions': 3, 'mmbench/judged': 0,
        'mmbench/judge_failed': 0,
        'mmbench/category/ocr': 50.0, 'mmbench/category/count': 100.0,
        'mmbench/l2-category/FP': 50.0, 'mmbench/l2-category/CP': 100.0}


def test_submission_file_as_llava_writes_it(tmp_path):
    columns = ['index', 'question', 'hint', 'A', 'B', 'C', 'D', 'answer',
               'category', 'image', 'source', 'l2-category', 'comment',
               'split']
    tsv = tmp_path / 'mmbench_test.tsv'
    with open(tsv, 'w', newline='') as file:
        writer = csv.writer(file, delimiter='\t')
        writer.writerow(columns)
        writer.writerow(['7', 'Q?', '', 'x', 'y', '', '', 'B', 'c', 'iVBO',
                         's', 'l2', '', 'test'])
        writer.writerow(['1000007', 'Q?', '', 'y', 'x', '', '', 'A', 'c',
                         '7', 's', 'l2', '', 'test'])
    out = tmp_path / 'upload.tsv'
    write_submission(str(tsv), {7: 'B', 1000007: 'the first'}, str(out))
    with open(out, newline='') as file:
        table = list(csv.reader(file, delimiter='\t'))
    # LLaVA's convert_mmbench_for_submission.py: drop hint, category,
    # source, image, comment, l2-category; insert prediction at column 6.
    assert table == [
        ['index', 'question', 'A', 'B', 'C', 'D', 'prediction', 'answer',
         'split'],
        ['7', 'Q?', 'x', 'y', '', '', 'B', 'B', 'test'],
        ['1000007', 'Q?', 'y', 'x', '', '', 'the first', 'A', 'test']]


def test_failed_judge_requests_stop_and_a_rerun_asks_only_those(tmp_path):
    from mmllava.testing.replay_server import Status
    rows = our_rows(question(1, 'What is it', FOUR, 'A',
                             ['teddy bear or rabbit', 'D', 'C', 'B'])
                    + question(2, 'What is it', FOUR, 'B',
                               ['rabbit or cat', 'A', 'D', 'C']))
    cache = str(tmp_path / 'judge.jsonl')

    def respond(body, index):
        prompt = body['messages'][-1]['content']
        if 'rabbit or cat' in prompt:
            return Status(400)  # a refusal, not retried
        return Reply('A')

    with ReplayServer(respond) as server:
        judge = dict(base_url=server.base_url, model='judge',
                     api_key_env=None, cache_file=cache, max_retries=0)
        with pytest.raises(RuntimeError, match='1 of 2 judge requests '
                           'failed .*rerun to ask only the rest'):
            circular_hits(rows, judge)
    with ReplayServer(lambda body, index: Reply('B')) as server:
        judge['base_url'] = server.base_url
        hits = circular_hits(rows, judge)
        assert len(server.requests) == 1  # question 1's reply was kept
    assert hits[1]['hit'] and hits[2]['hit']
