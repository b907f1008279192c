"""``mmllava/datasets/ground_truth.py``: each reader on small files in its
benchmark's official layout, joined with question records copied from
LLaVA's question files (``llava_textvqa_val_v051_ocr.jsonl``,
``llava_pope_test.jsonl``, ``llava_mme.jsonl``, ...).
"""
import json

import pytest

from mmllava.datasets.ground_truth import (GROUND_TRUTH_READERS,
                                           question_line, read_ground_truth)

SHORT = '\nAnswer the question using a single word or phrase.'


def write_json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return str(path)


def write_lines(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(json.dumps(entry) + '\n' for entry in entries))
    return str(path)


def vqa_answers(*answers):
    return [dict(answer=answer, answer_confidence='yes', answer_id=index)
            for index, answer in enumerate(answers, 1)]


def test_vqav2_joins_on_question_id(tmp_path):
    path = write_json(tmp_path / 'v2_mscoco_val2014_annotations.json', dict(
        info={}, license={}, data_subtype='val2014',
        annotations=[
            dict(question_id=262148000, image_id=262148,
                 question_type='where is the', answer_type='other',
                 multiple_choice_answer='down',
                 answers=vqa_answers('down', 'down', 'at table')),
            dict(question_id=262148001, image_id=262148,
                 question_type='is the', answer_type='yes/no',
                 multiple_choice_answer='no', answers=vqa_answers('no')),
        ]))
    questions = [
        dict(question_id=262148001, image='COCO_val2014_000000262148.jpg',
             text='Is the man wearing a hat?' + SHORT),
        # A string id finds the integer one.
        dict(question_id='262148000', image='COCO_val2014_000000262148.jpg',
             text='Where is he looking?' + SHORT),
    ]
    assert read_ground_truth('vqav2', path, questions) == [
        dict(gt_answers=['no']),
        dict(gt_answers=['down', 'down', 'at table'])]


def test_gqa_joins_on_question_id(tmp_path):
    path = write_json(tmp_path / 'testdev_balanced_questions.json', {
        '201307251': dict(question='Is it overcast?', imageId='n161313',
                          answer='no', fullAnswer='No, it is clear.',
                          isBalanced=True),
        '201640614': dict(question='Who is wearing the dress?',
                          imageId='n235859', answer='woman',
                          fullAnswer='The woman is wearing a dress.')})
    questions = [
        dict(question_id='201640614', image='n235859.jpg',
             text='Who is wearing the dress?' + SHORT, category='default'),
        dict(question_id='201307251', image='n161313.jpg',
             text='Is it overcast?' + SHORT, category='default')]
    assert read_ground_truth('gqa', path, questions) == [
        dict(gt_answer='woman'), dict(gt_answer='no')]


TEXTVQA_ANSWERS = ['nous les gosses', 'dakota', 'clos culombu', 'dakota',
                   'dakota', 'dakota', 'dakota', 'dakota', 'dakota',
                   'dakota digital']


def textvqa_entry(question, image_id, question_id, answers):
    return dict(question=question, image_id=image_id, image_classes=['Camera'],
                flickr_original_url='', flickr_300k_url='', image_width=1024,
                image_height=664, question_tokens=question.split(),
                question_id=question_id, set_name='val', answers=answers)


def test_textvqa_joins_like_eval_textvqa(tmp_path):
    path = write_json(tmp_path / 'TextVQA_0.5.1_val.json', dict(
        dataset_type='val', dataset_name='textvqa', dataset_version='0.5.1',
        data=[
            textvqa_entry('what is the brand of this camera?',
                          '003a8ae2ef43b901', 34602, TEXTVQA_ANSWERS),
            textvqa_entry('what brand liquor is on the right?',
                          '831bcec304a17054', 34604, ['bowmore islay'] * 10),
            textvqa_entry('how long has the drink on the right been aged?',
                          '831bcec304a17054', 34605, ['10 years'] * 10),
        ]))
    ocr = '\nReference OCR token: IGNET, N, MORANGIE, ISLAY, AGED, 10'
    questions = [
        # LLaVA's file: the image id as question_id, shared by two questions.
        dict(question_id='831bcec304a17054', image='831bcec304a17054.jpg',
             text='How long has the drink on the right been aged?' + ocr +
             SHORT, category='default'),
        dict(question_id='831bcec304a17054', image='831bcec304a17054.jpg',
             text='What brand liquor is on the right?' + ocr + SHORT,
             category='default'),
        # Without OCR tokens: question and instruction only.
        dict(question_id='003a8ae2ef43b901', image='003a8ae2ef43b901.jpg',
             text='What is the brand of this camera?' + SHORT),
        # A question file that uses TextVQA's own question ids.
        dict(question_id=34602, image='003a8ae2ef43b901.jpg',
             text='what is the brand of this camera?'),
    ]
    assert read_ground_truth('textvqa', path, questions) == [
        dict(gt_answers=['10 years'] * 10),
        dict(gt_answers=['bowmore islay'] * 10),
        dict(gt_answers=TEXTVQA_ANSWERS), dict(gt_answers=TEXTVQA_ANSWERS)]
    unknown = dict(question_id='831bcec304a17054', image='x.jpg',
                   text='Who made it?' + ocr + SHORT)
    with pytest.raises(ValueError) as info:
        read_ground_truth('textvqa', path, questions[:1] + [unknown])
    message = str(info.value)
    assert path in message and 'question record 1' in message
    assert "('831bcec304a17054', 'who made it?')" in message


@pytest.mark.parametrize('text,question', [
    ('What is it?\nReference OCR token: A, B' + SHORT, 'What is it?'),
    ('Reference OCR token: A, B\nWhat is it?' + SHORT, 'What is it?'),
    ('<image>\nWhat is it?' + SHORT, 'What is it?'),
    ('OCR tokens: a b Question: What is it? Short answer:', 'What is it?'),
])
def test_question_line(text, question):
    assert question_line(text) == question


def test_vizwiz_joins_on_the_image_name(tmp_path):
    path = write_json(tmp_path / 'Annotations' / 'val.json', [
        dict(image='VizWiz_val_00000000.jpg',
             question='Ok. There is another picture I hope it is a better '
             'one.', answers=vqa_answers('unanswerable', 'cooking'),
             answer_type='unanswerable', answerable=0),
        dict(image='VizWiz_val_00000001.jpg', question='Which one is the '
             'blue one?', answers=vqa_answers('right'), answer_type='other',
             answerable=1)])
    instruction = ("\nWhen the provided information is insufficient, respond "
                   "with 'Unanswerable'.")
    questions = [
        dict(question_id=0, image='VizWiz_val_00000001.jpg',
             text='Which one is the blue one?' + instruction + SHORT),
        dict(question_id=1, image='val/VizWiz_val_00000000.jpg',
             text='Ok. There is another picture I hope it is a better one.' +
             instruction + SHORT)]
    assert read_ground_truth('vizwiz', path, questions) == [
        dict(gt_answers=['right']),
        dict(gt_answers=['unanswerable', 'cooking'])]


def pope_entry(question_id, image, obj, label):
    return dict(question_id=question_id, image=image,
                text=f'Is there a {obj} in the image?', label=label)


@pytest.fixture
def pope_folder(tmp_path):
    folder = tmp_path / 'pope' / 'coco'
    image_a = 'COCO_val2014_000000310196.jpg'
    image_b = 'COCO_val2014_000000210789.jpg'
    write_lines(folder / 'coco_pope_adversarial.json', [
        pope_entry(1, image_a, 'snowboard', 'yes'),
        pope_entry(2, image_a, 'backpack', 'no'),
        pope_entry(3, image_b, 'snowboard', 'no')])
    write_lines(folder / 'coco_pope_random.json', [
        pope_entry(1, image_a, 'snowboard', 'yes'),
        pope_entry(2, image_a, 'car', 'no')])
    write_lines(folder / 'coco_pope_popular.json', [
        pope_entry(1, image_b, 'car', 'yes')])
    return str(folder)


def pope_question(question_id, image, obj, category):
    return dict(question_id=question_id, image=image,
                text=f'Is there a {obj} in the image?' + SHORT,
                category=category)


def test_pope_joins_within_the_category(pope_folder):
    image_a = 'COCO_val2014_000000310196.jpg'
    image_b = 'COCO_val2014_000000210789.jpg'
    # LLaVA's ids: 1.. for adversarial, 10000001.. for random.
    questions = [
        pope_question(1, image_a, 'snowboard', 'adversarial'),
        pope_question(2, image_a, 'backpack', 'adversarial'),
        pope_question(3, image_b, 'snowboard', 'adversarial'),
        pope_question(10000001, image_a, 'snowboard', 'random'),
        pope_question(10000002, image_a, 'car', 'random'),
    ]
    assert read_ground_truth('pope', pope_folder, questions) == [
        dict(gt_answer=label) for label in ('yes', 'no', 'no', 'yes', 'no')]
    # A subset, reordered, still finds its labels.
    assert read_ground_truth('pope', pope_folder, questions[::-2]) == [
        dict(gt_answer='no'), dict(gt_answer='no'), dict(gt_answer='yes')]


def test_pope_errors(pope_folder):
    image_b = 'COCO_val2014_000000210789.jpg'
    with pytest.raises(ValueError) as info:
        read_ground_truth('pope', pope_folder, [
            pope_question(20000001, image_b, 'dog', 'popular')])
    assert 'question record 0' in str(info.value)
    assert '20000001' in str(info.value)
    with pytest.raises(ValueError, match='question record 0 .*"category"'):
        read_ground_truth('pope', pope_folder, [
            dict(question_id=1, image=image_b, text='Is there a dog?')])
    with pytest.raises(FileNotFoundError, match='coco_pope_easy.json'):
        read_ground_truth('pope', pope_folder, [
            pope_question(1, image_b, 'dog', 'easy')])


@pytest.fixture
def mme_folder(tmp_path):
    """``MME_Benchmark_release_version``: flat subtasks (image and answers
    side by side) and subtasks with ``images``/``questions_answers_YN``."""
    root = tmp_path / 'MME_Benchmark_release_version'
    flat = root / 'code_reasoning'
    flat.mkdir(parents=True)
    (flat / '0020.png').write_bytes(b'')
    (flat / '0020.txt').write_text(
        'Is a python code shown in the picture? Please answer yes or no.\t'
        'Yes\nIs a c++ code shown in the picture? Please answer yes or no.\t'
        'No\n')
    nested = root / 'artwork'
    (nested / 'images').mkdir(parents=True)
    (nested / 'questions_answers_YN').mkdir()
    (nested / 'images' / '14777.jpg').write_bytes(b'')
    # One of the official files with two spaces before "Please answer".
    (nested / 'questions_answers_YN' / '14777.txt').write_text(
        'Does this artwork belong to the type of religious?  Please answer '
        'yes or no.\tYes\nDoes this artwork belong to the type of '
        'historical? Please answer yes or no.\tNo\n')
    return str(root)


def mme_question(question_id, question):
    return dict(question_id=question_id, image=question_id,
                text=question + SHORT, category=question_id.split('/')[0])


def test_mme_like_convert_answer_to_mme(mme_folder):
    questions = [
        mme_question('code_reasoning/0020.png',
                     'Is a python code shown in the picture?'),
        mme_question('code_reasoning/0020.png',
                     'Is a c++ code shown in the picture?'),
        mme_question('artwork/images/14777.jpg',
                     'Does this artwork belong to the type of religious?'),
        mme_question('artwork/images/14777.jpg',
                     'Does this artwork belong to the type of historical?'),
    ]
    assert read_ground_truth('mme', mme_folder, questions) == [
        dict(gt_answer='Yes', image_id='code_reasoning/0020.png'),
        dict(gt_answer='No', image_id='code_reasoning/0020.png'),
        dict(gt_answer='Yes', image_id='artwork/images/14777.jpg'),
        dict(gt_answer='No', image_id='artwork/images/14777.jpg')]


def test_mme_errors(mme_folder):
    with pytest.raises(ValueError) as info:
        read_ground_truth('mme', mme_folder, [mme_question(
            'code_reasoning/0020.png', 'Is a java code shown?')])
    assert 'code_reasoning/0020.txt' in str(info.value)
    assert 'question record 0' in str(info.value)
    assert 'Is a java code shown? Please answer yes or no.' in \
        str(info.value)
    with pytest.raises(FileNotFoundError, match='questions_answers_YN/9.txt'):
        read_ground_truth('mme', mme_folder, [mme_question(
            'artwork/images/9.jpg', 'Is it?')])


def test_scienceqa_reads_problems(tmp_path):
    path = write_json(tmp_path / 'problems.json', {
        '4': dict(question='Which figure of speech is used in this text?',
                  choices=['chiasmus', 'apostrophe'], answer=1, hint='',
                  image=None, lecture='', solution='',
                  subject='language science'),
        '5': dict(question='Which could the test show?',
                  choices=['a', 'b', 'c'], answer=2, hint='h',
                  image='image.png', lecture='', solution='',
                  subject='natural science')})
    questions = [dict(question_id='5', image='5/image.png', text='?'),
                 dict(question_id='4', text='?')]
    assert read_ground_truth('scienceqa', path, questions) == [
        dict(gt_answer='C', num_choices=3), dict(gt_answer='B',
                                                 num_choices=2)]
    with pytest.raises(ValueError, match="question_id='6'"):
        read_ground_truth('scienceqa', path, [dict(question_id='6',
                                                   text='?')])


def test_missing_ground_truth_names_file_record_and_id(tmp_path):
    path = write_json(tmp_path / 'testdev_balanced_questions.json',
                      {'1': dict(answer='yes')})
    with pytest.raises(ValueError) as info:
        read_ground_truth('gqa', path, [
            dict(question_id='1', text='q'), dict(question_id='2',
                                                  text='q')])
    message = str(info.value)
    assert path in message
    assert "question record 1 (question_id='2')" in message


def test_malformed_annotation_names_the_entry(tmp_path):
    path = write_json(tmp_path / 'ann.json', dict(annotations=[
        dict(question_id=1, answers=vqa_answers('a')),
        dict(question_id=2)]))
    with pytest.raises(ValueError, match='annotation 1 has no "answers"'):
        read_ground_truth('vqav2', path, [dict(question_id=1, text='q')])
    with pytest.raises(ValueError, match='the file has no "data"'):
        read_ground_truth('textvqa', path, [dict(question_id=1, text='q')])


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(ValueError) as info:
        read_ground_truth('okvqa', 'x.json', [])
    assert "'okvqa'" in str(info.value)
    assert ', '.join(sorted(GROUND_TRUTH_READERS)) in str(info.value)
    assert set(GROUND_TRUTH_READERS) == {'vqav2', 'gqa', 'textvqa', 'vizwiz',
                                         'pope', 'mme', 'scienceqa'}


def test_missing_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        read_ground_truth('vqav2', str(tmp_path / 'nowhere.json'), [])
