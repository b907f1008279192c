"""``mmllava/datasets/scienceqa.py`` and ``tools/data/convert_scienceqa.py``.

The problems below are shaped like ScienceQA's ``problems.json``; problems
4 and 5 are real ones, and their expected test texts are copied from LLaVA's
``llava_test_CQM-A.json``. The expected training texts are written out by
hand from the ``QCM-LEA`` format of LLaVA's ``convert_sqa_to_llava.py``.
"""
import json
import runpy
import sys
from pathlib import Path

import pytest

from mmllava.datasets import LLaVADataset, LLaVAQuestionDataset
from mmllava.datasets.scienceqa import (convert_scienceqa, load_split,
                                        to_llava_record, to_question_record)

REPO = Path(__file__).resolve().parents[2]
CONVERT = REPO / 'tools/data/convert_scienceqa.py'

ILIAD = ('Sing, O goddess, the anger of Achilles son of Peleus, that brought '
         'countless ills upon the Achaeans.\n\u2014Homer, The Iliad')
GORDON_HINT = (
    'People can use the engineering-design process to develop solutions to '
    'problems. One step in the process is testing if a potential solution '
    'meets the requirements of the design.\nThe passage below describes how '
    'the engineering-design process was used to test a solution to a '
    'problem. Read the passage. Then answer the question below.\n\nGordon '
    'was an aerospace engineer who was developing a parachute for a '
    'spacecraft that would land on Mars.\nFigure: a spacecraft\'s parachute '
    'in a wind tunnel.')
GORDON_CHOICES = [
    'if the spacecraft was damaged when using a parachute with a 1 m vent '
    'going 200 km per hour',
    'how steady a parachute with a 1 m vent was at 200 km per hour',
    'whether a parachute with a 1 m vent would swing too much at 400 km per '
    'hour']


def problem(question, choices, answer, hint='', image=None, lecture='',
            solution='', subject='language science'):
    return dict(question=question, choices=choices, answer=answer, hint=hint,
                image=image, task='closed choice', grade='grade8',
                subject=subject, topic='t', category='c', skill='s',
                lecture=lecture, solution=solution, split='test')


PROBLEMS = {
    '4': problem(
        f'Which figure of speech is used in this text?\n{ILIAD}',
        ['chiasmus', 'apostrophe'], 1,
        lecture='Figures of speech are words or phrases that use language '
        'in a nonliteral or unexpected way.\nApostrophe is a direct address '
        'to an absent person or a nonhuman entity.',
        solution='The text uses apostrophe.'),
    '5': problem(
        "Which of the following could Gordon's test show?", GORDON_CHOICES,
        1, hint=GORDON_HINT, image='image.png',
        lecture='People can use the engineering-design process.',
        solution='The second paragraph describes the test.',
        subject='natural science'),
    # No lecture, a run of spaces in the solution, a hint and an image.
    '26': problem('How long does it take to bake lasagna in the oven?',
                  ['33 minutes', '33 hours'], 0,
                  hint='Select the better estimate.', image='image.png',
                  solution='The better  estimate is 33 minutes.',
                  subject='natural science'),
    '900': problem('Not in the split.', ['a', 'b'], 0),
}
SPLITS = {'train': ['26'], 'test': ['4', '5', '26'], 'val': []}
SUFFIX = "\nAnswer with the option's letter from the given choices directly."


@pytest.fixture
def files(tmp_path):
    problems = tmp_path / 'problems.json'
    problems.write_text(json.dumps(PROBLEMS))
    splits = tmp_path / 'pid_splits.json'
    splits.write_text(json.dumps(SPLITS))
    return str(problems), str(splits)


def test_training_records_in_the_qcm_lea_format():
    assert to_llava_record('4', PROBLEMS['4']) == {
        'id': '4',
        'conversations': [
            {'from': 'human', 'value':
             f'Which figure of speech is used in this text?\n{ILIAD}\n'
             'Context: N/A\nOptions: (A) chiasmus (B) apostrophe'},
            {'from': 'gpt', 'value':
             'Figures of speech are words or phrases that use language in a '
             'nonliteral or unexpected way.\nApostrophe is a direct address '
             'to an absent person or a nonhuman entity. The text uses '
             'apostrophe. The answer is B.'}]}
    record = to_llava_record('26', PROBLEMS['26'])
    assert record['image'] == '26/image.png'
    assert record['conversations'] == [
        {'from': 'human', 'value':
         'How long does it take to bake lasagna in the oven?\nContext: '
         'Select the better estimate.\nOptions: (A) 33 minutes (B) 33 hours'
         '\n<image>'},
        {'from': 'gpt', 'value':
         'The better estimate is 33 minutes. The answer is A.'}]


def test_test_questions_in_llava_cqm_a_layout():
    assert to_question_record('4', PROBLEMS['4']) == dict(
        question_id='4',
        text='Which figure of speech is used in this text?\nSing, O goddess, '
        'the anger of Achilles son of Peleus, that brought countless ills '
        'upon the Achaeans.\n\u2014Homer, The Iliad\nA. chiasmus\n'
        'B. apostrophe',
        category='language science', answer='B', num_choices=2)
    record = to_question_record('5', PROBLEMS['5'])
    assert record == dict(
        question_id='5', image='5/image.png',
        text=f"Context: {GORDON_HINT}\nWhich of the following could Gordon's "
        f'test show?\nA. {GORDON_CHOICES[0]}\nB. {GORDON_CHOICES[1]}\n'
        f'C. {GORDON_CHOICES[2]}',
        category='natural science', answer='B', num_choices=3)


def test_convert_writes_files_the_datasets_load(files, tmp_path):
    problems, splits = files
    out_train = tmp_path / 'out' / 'train.json'
    out_questions = tmp_path / 'out' / 'test.jsonl'
    assert convert_scienceqa(problems, splits, 'train',
                             out_train=str(out_train)) == dict(
        num_problems=1, num_with_image=1)
    assert convert_scienceqa(problems, splits, 'test',
                             out_questions=str(out_questions)) == dict(
        num_problems=3, num_with_image=2)
    assert json.loads(out_train.read_text()) == [
        to_llava_record('26', PROBLEMS['26'])]
    lines = out_questions.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        to_question_record(pid, PROBLEMS[pid]) for pid in SPLITS['test']]

    train = LLaVADataset(str(out_train), image_folder='images/train')
    assert train.get_data_info(0)['img_path'] == 'images/train/26/image.png'
    questions = LLaVAQuestionDataset(str(out_questions), 'images/test',
                                     prompt_suffix=SUFFIX)
    text_only, with_image = questions.get_data_info(0), \
        questions.get_data_info(1)
    assert text_only['img_path'] is None
    assert text_only['conversations'] == [{
        'from': 'human', 'value': to_question_record(
            '4', PROBLEMS['4'])['text'] + SUFFIX}]
    assert (text_only['gt_answer'], text_only['num_choices'],
            text_only['category']) == ('B', 2, 'language science')
    # LLaVA's model_vqa_science: '<image>\n' + question + the suffix.
    assert with_image['conversations'][0]['value'] == (
        '<image>\n' + to_question_record('5', PROBLEMS['5'])['text'] +
        SUFFIX)
    assert with_image['img_path'] == 'images/test/5/image.png'


def test_an_empty_split_writes_empty_files(files, tmp_path):
    problems, splits = files
    out = tmp_path / 'val.jsonl'
    assert convert_scienceqa(problems, splits, 'val',
                             out_questions=str(out))['num_problems'] == 0
    assert out.read_text() == ''


@pytest.mark.parametrize('change,expected', [
    (dict(answer=2), ['problem \'4\'', '"answer"', '2 choices']),
    (dict(answer=True), ['problem \'4\'', '"answer"']),
    (dict(choices=[]), ['problem \'4\'', '"choices"']),
    (dict(choices=list('abcdef'), answer=0), ['problem \'4\'', '"choices"']),
    (dict(hint=None), ['problem \'4\'', '"hint"']),
    (dict(image=3), ['problem \'4\'', '"image"']),
])
def test_bad_problem_names_the_problem_and_field(change, expected, tmp_path):
    bad = dict(PROBLEMS, **{'4': dict(PROBLEMS['4'], **change)})
    problems = tmp_path / 'problems.json'
    problems.write_text(json.dumps(bad))
    splits = tmp_path / 'pid_splits.json'
    splits.write_text(json.dumps(SPLITS))
    with pytest.raises(ValueError) as info:
        load_split(str(problems), str(splits), 'test')
    for text in [str(problems)] + expected:
        assert text in str(info.value), (text, str(info.value))


def test_split_errors(files, tmp_path):
    problems, splits = files
    with pytest.raises(ValueError) as info:
        load_split(problems, splits, 'minitest')
    assert "'minitest'" in str(info.value)
    assert 'test, train, val' in str(info.value)
    missing = tmp_path / 'splits.json'
    missing.write_text(json.dumps({'test': ['4', '77']}))
    with pytest.raises(ValueError, match="problem '77' of split 'test'"):
        load_split(problems, str(missing), 'test')
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        load_split(str(tmp_path / 'nowhere.json'), splits, 'test')
    with pytest.raises(ValueError, match='Nothing to write'):
        convert_scienceqa(problems, splits, 'test')


def run_command_line(monkeypatch, *args):
    """Run the tool as ``python tools/data/convert_scienceqa.py ARGS`` would,
    in this process (a subprocess would spend seconds importing torch)."""
    monkeypatch.setattr(sys, 'argv', [str(CONVERT), *args])
    runpy.run_path(str(CONVERT), run_name='__main__')


def test_command_line(files, tmp_path, monkeypatch, capsys):
    problems, splits = files
    out_train, out_questions = tmp_path / 't.json', tmp_path / 'q.jsonl'
    run_command_line(monkeypatch, '--problems', problems, '--pid-splits',
                     splits, '--split', 'test', '--out-train',
                     str(out_train), '--out-questions', str(out_questions))
    stdout = capsys.readouterr().out
    assert "converting the 'test' split" in stdout
    assert '3 problems (2 with an image)' in stdout
    assert f'wrote {out_train}' in stdout
    assert f'wrote {out_questions}' in stdout
    assert len(json.loads(out_train.read_text())) == 3
    assert len(out_questions.read_text().splitlines()) == 3


@pytest.mark.parametrize('args,message', [
    (('--split', 'dev', '--out-questions', 'q.jsonl'),
     "error: {splits}: no split 'dev'; it has test, train, val"),
    (('--split', 'test'), '--out-train and/or --out-questions'),
])
def test_command_line_errors(args, message, files, tmp_path, monkeypatch,
                             capsys):
    problems, splits = files
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        run_command_line(monkeypatch, '--problems', problems,
                         '--pid-splits', splits, *args)
    assert info.value.code != 0
    shown = str(info.value.code) + capsys.readouterr().err
    assert message.format(splits=splits) in shown


def test_command_line_names_a_missing_file(files, tmp_path, monkeypatch):
    _, splits = files
    with pytest.raises(SystemExit, match='error: ScienceQA problems file '
                       'not found: .*nowhere.json'):
        run_command_line(monkeypatch, '--problems',
                         str(tmp_path / 'nowhere.json'), '--pid-splits',
                         splits, '--split', 'test', '--out-questions',
                         str(tmp_path / 'q.jsonl'))
