"""LLaVA-Bench review: the judge's request, score parsing, and the
relative scores of tools/eval/gpt_review.py against hand-computed values."""
import asyncio
import importlib.util
import json
from pathlib import Path

import pytest

from mmllava.datagen.parsing import ParseError
from mmllava.datagen.review import JUDGE_SYSTEM_PROMPT, parse_scores
from mmllava.testing.replay_server import ReplayServer, Reply, by_marker

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools/eval/gpt_review.py'
KEY_ENV = 'MMLLAVA_TEST_API_KEY'

# question id: (category, judge replies in order)
SCRIPT = {
    'q1': ('conv', ['8 6\nBoth are fine; the second misses the colour.']),
    'q2': ('conv', ['9 7.5\nThe first is more complete.']),
    'q3': ('detail', ['10, 5\nThe second invents a second dog.']),
    'q4': ('complex', ['7 7\nEqually good.']),
    'q5': ('complex', ['Assistant 1 is better.', '6 9\nThe second reasons '
                       'more carefully.']),
    'q6': ('complex', ['Scores: high and low']),
}


def write_bench(folder: Path) -> list[str]:
    """LLaVA-Bench-style files for the questions of SCRIPT."""
    def jsonl(name, rows):
        path = folder / name
        path.write_text(''.join(json.dumps(row) + '\n' for row in rows))
        return str(path)

    ids = list(SCRIPT)
    return [
        '--questions', jsonl('questions.jsonl', [dict(
            question_id=qid, image=f'{qid}.jpg', category=SCRIPT[qid][0],
            text=f'What is in picture {qid}?') for qid in ids]),
        '--contexts', jsonl('context.jsonl', [dict(
            image=f'{qid}.jpg', caption=[f'A dog in {qid}.', 'A park.'],
            instances=[dict(category='dog', bbox=[0.1, 0.25, 0.5, 0.75])])
            for qid in ids]),
        '--references', jsonl('reference.jsonl', [dict(
            question_id=qid, text=f'reference answer {qid}') for qid in ids]),
        '--answers', jsonl('answers.jsonl', [dict(
            question_id=qid, text=f'model answer {qid}') for qid in ids]),
    ]


def load_tool():
    spec = importlib.util.spec_from_file_location('gpt_review', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_relative_scores_against_hand_computed_values(tmp_path, api_key,
                                                      capsys):
    script = {f'picture {qid}?': [Reply(text) for text in replies]
              for qid, (_, replies) in SCRIPT.items()}
    tool = load_tool()
    output = tmp_path / 'reviews.jsonl'
    with ReplayServer(by_marker(script, Reply('no such question'))) \
            as server:
        args = tool.parse_args(write_bench(tmp_path) + [
            '--output', str(output), '--base-url', server.base_url,
            '--model', 'judge', '--api-key-env', KEY_ENV, '--no-progress',
            '--parse-retries', '1'])
        assert asyncio.run(tool.run(args)) == 1  # q6 never parses
        first_count = len(server.requests)
        printed = capsys.readouterr()
        # A rerun judges only what is missing: q6, twice again.
        assert asyncio.run(tool.run(args)) == 1
        assert len(server.requests) == first_count + 2

    assert first_count == 4 + 2 + 2  # q1-q4 once, q5 and q6 twice
    request = next(r for r in server.requests
                   if 'picture q3?' in r.body['messages'][-1]['content'])
    system, user = request.body['messages']
    assert system == dict(role='system', content=JUDGE_SYSTEM_PROMPT)
    assert ('[Image information]\nA dog in q3.\nA park.\n\n'
            'dog: [0.100, 0.250, 0.500, 0.750]\n\n'
            '[Question]\nWhat is in picture q3?\n\n'
            '[Assistant 1]\nreference answer q3\n[End of Assistant 1]\n\n'
            '[Assistant 2]\nmodel answer q3\n[End of Assistant 2]') \
        in user['content']

    reviews = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(r['question_id'] for r in reviews) == \
        ['q1', 'q2', 'q3', 'q4', 'q5']
    q5 = next(r for r in reviews if r['question_id'] == 'q5')
    assert (q5['reference_score'], q5['model_score']) == (6.0, 9.0)
    assert q5['review'].startswith('6 9\n')

    scores = json.loads((tmp_path / 'reviews.scores.json').read_text())
    # conv: model (6 + 7.5) / 2 = 6.75, reference (8 + 9) / 2 = 8.5.
    # detail: 5 / 10. complex (q4, q5): 8 / 6.5.
    # overall: model 34.5 / 5 = 6.9, reference 40 / 5 = 8.
    expected = dict(conv=(2, 6.75, 8.5), detail=(1, 5.0, 10.0),
                    complex=(2, 8.0, 6.5), overall=(5, 6.9, 8.0))
    assert list(scores) == ['complex', 'conv', 'detail', 'overall']
    for name, (count, model, reference) in expected.items():
        row = scores[name]
        assert row['count'] == count
        assert row['model'] == pytest.approx(model)
        assert row['reference'] == pytest.approx(reference)
        assert row['relative'] == pytest.approx(100 * model / reference)
    assert scores['overall']['relative'] == pytest.approx(86.25)
    assert 'overall         5     86.2%' in printed.out
    assert "failed: question q6: the reply does not parse" in printed.err
    assert api_key not in printed.out + printed.err


@pytest.mark.parametrize('reply, scores', [
    ('8 6\nwhy', (8.0, 6.0)), ('7.5, 9', (7.5, 9.0)), (' 10 1 ', (10.0, 1.0)),
])
def test_parse_scores(reply, scores):
    assert parse_scores(reply) == scores


@pytest.mark.parametrize('reply, reason', [
    ('', 'not two scores'), ('Scores: 8 and 6', 'not two scores'),
    ('8 6 7', 'not two scores'), ('11 6', 'from 1 to 10'),
    ('0 6', 'from 1 to 10'),
])
def test_bad_scores(reply, reason):
    with pytest.raises(ParseError, match=reason):
        parse_scores(reply)
