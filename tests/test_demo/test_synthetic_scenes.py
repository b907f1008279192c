"""The generated demo data: deterministic, well formed and true to the
images.

Expected answers are worked out here from the boxes in ``scenes.json``, not
with the generator's own helpers, so a wrong position rule or a wrong count
in the generator shows up as a mismatch.
"""
import json
import re
import runpy
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmllava.testing.demo.scenes import BACKGROUND, COLOURS
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset

NUM_TRAIN, NUM_EVAL, IMAGE_SIZE = 60, 20, 64
COLUMNS = ('left', 'centre', 'right')
ROWS = ('top', 'middle', 'bottom')
NUMBERS = ('no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
           'eight', 'nine', 'ten', 'eleven', 'twelve')
CORNERS = {'circle': 0, 'square': 4, 'triangle': 3}
GENERATOR = Path(__file__).parents[2] / 'tools/data/generate_demo_data.py'


def load(out_dir: Path, name: str):
    """Read one of the generated json files with the stdlib."""
    return json.loads((out_dir / name).read_text())


@pytest.fixture(scope='module')
def out_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('demo')
    generate_demo_dataset(path, NUM_TRAIN, NUM_EVAL, IMAGE_SIZE, seed=3)
    return path


@pytest.fixture(scope='module')
def scenes(out_dir) -> dict:
    """Scenes by id, each object with its row and column worked out from
    its box centre."""
    scenes = {}
    for scene in load(out_dir, 'scenes.json')['scenes']:
        for obj in scene['objects']:
            x1, y1, x2, y2 = obj['box']
            obj['column'] = int(3 * (x1 + x2) / 2 / IMAGE_SIZE)
            obj['row'] = int(3 * (y1 + y2) / 2 / IMAGE_SIZE)
        scenes[scene['id']] = scene
    return scenes


def position_name(row: int, column: int) -> str:
    if row == 1:
        return COLUMNS[column]
    if column == 1:
        return ROWS[row]
    return f'{ROWS[row]} {COLUMNS[column]}'


def parse_position(phrase: str) -> str:
    """'on the left side of the image' or 'on the left' -> 'left'."""
    match = re.fullmatch(r'(?:in|on|at) the (.+?)(?: side)?(?: of the image)?',
                         phrase)
    return match.group(1)


def by_name(objects: list, name: str) -> dict:
    colour, shape = name.split()
    [obj] = [o for o in objects if (o['colour'], o['shape']) == (colour,
                                                                shape)]
    return obj


def scene_of(record: dict, scenes: dict) -> dict:
    return scenes[Path(record['image']).stem]


def expected_short_answer(question: str, scene: dict) -> str:
    """The one-word answer to a scene question, from the boxes."""
    objects = scene['objects']
    if question == 'How many shapes are there in the image?':
        return str(len(objects))
    if match := re.fullmatch(r'How many (\w+)s are there in the image\?',
                             question):
        return str(sum(o['shape'] == match[1] for o in objects))
    if match := re.fullmatch(r'What colour is the shape (.+)\?', question):
        position = parse_position(match[1])
        [obj] = [o for o in objects
                 if position_name(o['row'], o['column']) == position]
        return obj['colour']
    if match := re.fullmatch(r'What colour is the (\w+)\?', question):
        [obj] = [o for o in objects if o['shape'] == match[1]]
        return obj['colour']
    if match := re.fullmatch(r'What shape is the (\w+) object\?', question):
        [obj] = [o for o in objects if o['colour'] == match[1]]
        return obj['shape']
    if match := re.fullmatch(r'Is the (\w+ \w+) large or small\?', question):
        return by_name(objects, match[1])['size']
    if match := re.fullmatch(r'Where is the (\w+ \w+)\?', question):
        obj = by_name(objects, match[1])
        return position_name(obj['row'], obj['column'])
    if match := re.fullmatch(r'Is there an? (\w+) (\w+) in the image\?',
                             question):
        present = any((o['colour'], o['shape']) == (match[1], match[2])
                      for o in objects)
        return 'yes' if present else 'no'
    match = re.fullmatch(
        r'Is the (\w+ \w+) (to the left of|to the right of|above|below) '
        r'the (\w+ \w+)\?', question)
    first, second = by_name(objects, match[1]), by_name(objects, match[3])
    truth = {
        'to the left of': first['column'] < second['column'],
        'to the right of': first['column'] > second['column'],
        'above': first['row'] < second['row'],
        'below': first['row'] > second['row'],
    }[match[2]]
    return 'yes' if truth else 'no'


def check_sentence(question: str, answer: str, scene: dict) -> None:
    """A full-sentence answer says what the short answer says."""
    short = expected_short_answer(question, scene)
    if short in ('yes', 'no'):
        assert answer.startswith(short.capitalize() + ','), (question, answer)
    elif short.isdigit():
        assert f' {NUMBERS[int(short)]} ' in answer, (question, answer)
    elif question.startswith('Where'):
        phrase = re.fullmatch(r'The \w+ \w+ is (.+)\.', answer)[1]
        assert parse_position(phrase) == short, (question, answer)
    else:
        assert answer.endswith(f' {short}.'), (question, answer)


def check_reasoning(question: str, answer: str, scene: dict) -> None:
    """Reasoning answers reach the right conclusion."""
    objects = scene['objects']
    names = [f"{o['colour']} {o['shape']}" for o in objects]
    if question.startswith('If the'):
        removed = re.match(r'If the (\w+ \w+) were removed', question)[1]
        assert removed in names
        assert answer.lower().startswith(NUMBERS[len(objects) - 1])
    elif question.startswith('How many corners'):
        total = sum(CORNERS[o['shape']] for o in objects)
        if len(objects) > 1:
            assert answer.startswith(f'The shapes have {NUMBERS[total]} ')
        else:
            assert f' has {NUMBERS[total]} corner' in answer
    elif match := re.fullmatch(r'Which shape is closest to the (\w+) edge.*',
                               question):
        axis, pick = dict(top=('row', min), bottom=('row', max),
                          left=('column', min), right=('column', max))[
                              match[1]]
        nearest = pick(o[axis] for o in objects)
        [winner] = [o for o in objects if o[axis] == nearest]
        assert answer.startswith(
            f"The {winner['colour']} {winner['shape']} is closest")
    elif match := re.fullmatch(r'Which is larger, the (\w+ \w+) or the '
                               r'(\w+ \w+)\?', question):
        first, second = by_name(objects, match[1]), by_name(objects, match[2])
        if first['size'] == second['size']:
            assert answer.startswith('They are the same size.')
        else:
            larger = match[1] if first['size'] == 'large' else match[2]
            assert answer.startswith(f'The {larger} is larger.')
    else:
        assert question in (
            'Does any kind of shape appear more than once in the image?',
        ) or question.startswith('What would you see'), question


def test_deterministic_for_a_seed(tmp_path, out_dir):
    generate_demo_dataset(tmp_path / 'again', NUM_TRAIN, NUM_EVAL,
                          IMAGE_SIZE, seed=3)
    for path in sorted(out_dir.rglob('*.*')):
        copy = tmp_path / 'again' / path.relative_to(out_dir)
        assert copy.read_bytes() == path.read_bytes(), path.name
    generate_demo_dataset(tmp_path / 'other', 5, 0, IMAGE_SIZE, seed=4)
    assert (load(tmp_path / 'other', 'scenes.json')['scenes'] !=
            load(out_dir, 'scenes.json')['scenes'][:5])


def test_a_scene_does_not_depend_on_the_counts(tmp_path, out_dir):
    generate_demo_dataset(tmp_path, 3, 2, IMAGE_SIZE, seed=3)
    fewer = load(tmp_path, 'scenes.json')['scenes']
    every = {scene['id']: scene for scene in
             load(out_dir, 'scenes.json')['scenes']}
    assert fewer == [every[scene['id']] for scene in fewer]


def test_counts(tmp_path):
    written = generate_demo_dataset(tmp_path, 30, 7, IMAGE_SIZE)
    instruct = load(tmp_path, 'instruct.json')
    text_only = [record for record in instruct if 'image' not in record]
    assert len(load(tmp_path, 'scenes.json')['scenes']) == 37
    assert len(load(tmp_path, 'pretrain.json')) == 30
    assert len(instruct) == written['num_instruct_records'] == 30 * 4 + len(
        text_only)
    assert 0.08 <= len(text_only) / len(instruct) <= 0.12
    assert len(load(tmp_path, 'eval.json')) == written['num_eval_records']
    assert len(list((tmp_path / 'images').iterdir())) == 37
    corpus = (tmp_path / 'corpus.txt').read_text().splitlines()
    assert len(corpus) == written['num_corpus_lines']


def test_images_match_the_boxes(out_dir, scenes):
    for scene in scenes.values():
        pixels = np.asarray(Image.open(out_dir / scene['image']).convert(
            'RGB'))
        assert pixels.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        outside = np.ones(pixels.shape[:2], bool)
        for obj in scene['objects']:
            x1, y1, x2, y2 = obj['box']
            outside[y1:y2, x1:x2] = False
            crop = pixels[y1:y2, x1:x2]
            drawn = (crop == COLOURS[obj['colour']]).all(-1)
            # Shape pixels have exactly their colour, the rest is background
            # and the box is tight.
            assert (drawn | (crop == BACKGROUND).all(-1)).all()
            assert drawn[(y2 - y1) // 2, (x2 - x1) // 2]
            assert drawn.any(0).all() and drawn.any(1).all()
        assert (pixels[outside] == BACKGROUND).all()


def test_boxes_and_positions(scenes):
    for scene in scenes.values():
        objects = scene['objects']
        assert 1 <= len(objects) <= 3
        assert len({o['colour'] for o in objects}) == len(objects)
        for obj in objects:
            x1, y1, x2, y2 = obj['box']
            assert 0 <= x1 < x2 <= IMAGE_SIZE and 0 <= y1 < y2 <= IMAGE_SIZE
            assert obj['box_norm'] == [round(v / IMAGE_SIZE, 3)
                                       for v in obj['box']]
            assert obj['position'] == position_name(obj['row'],
                                                    obj['column'])
        for index, obj in enumerate(objects):
            for other in objects[index + 1:]:
                ax1, ay1, ax2, ay2 = obj['box']
                bx1, by1, bx2, by2 = other['box']
                assert ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1


def test_captions_and_descriptions_mention_every_object(out_dir, scenes):
    records = load(out_dir, 'pretrain.json') + [
        record for record in load(out_dir, 'instruct.json')
        if record['id'].endswith(('_caption', '_detail'))
    ]
    for record in records:
        text = record['conversations'][1]['value']
        for obj in scene_of(record, scenes)['objects']:
            assert f"{obj['size']} {obj['colour']} {obj['shape']}" in text
            assert re.search(rf"\b{obj['position']}\b", text)


def test_description_relations_are_true(out_dir, scenes):
    details = [record for record in load(out_dir, 'instruct.json')
               if record['id'].endswith('_detail')]
    relations = 0
    for record in details:
        objects = scene_of(record, scenes)['objects']
        text = record['conversations'][1]['value']
        for match in re.finditer(r'An? (?:small|large) (\w+ \w+) is [^,.]+, '
                                 r'([a-z ]+) the (\w+ \w+)\.', text):
            obj, other = by_name(objects, match[1]), by_name(objects, match[3])
            for word in match[2].split(' and '):
                assert {
                    'above': obj['row'] < other['row'],
                    'below': obj['row'] > other['row'],
                    'to the left of': obj['column'] < other['column'],
                    'to the right of': obj['column'] > other['column'],
                }[word], (text, match[0])
            relations += 1
    assert relations > 0


def test_pretrain_records(out_dir):
    records = load(out_dir, 'pretrain.json')
    prompts, before, after = set(), 0, 0
    for record in records:
        human, gpt = record['conversations']
        assert (human['from'], gpt['from']) == ('human', 'gpt')
        assert record['image'].startswith('images/train_')
        before += human['value'].startswith('<image>\n')
        after += human['value'].endswith('\n<image>')
        prompts.add(human['value'].replace('<image>', '').strip())
    assert before and after and before + after == len(records)
    assert len(prompts) > 3


def test_answers_are_true_to_the_scenes(out_dir, scenes):
    kinds = set()
    for record in load(out_dir, 'instruct.json'):
        if 'image' not in record:
            continue
        scene = scene_of(record, scenes)
        assert scene['split'] == 'train'
        turns = record['conversations']
        pairs = [(turns[i]['value'].replace('<image>', '').strip(),
                  turns[i + 1]['value']) for i in range(0, len(turns), 2)]
        kind = record['id'].rsplit('_', 1)[1]
        kinds.add(kind)
        for question, answer in pairs:
            if kind == 'short':
                question = question.removesuffix(
                    '\nAnswer the question using a single word or phrase.')
                assert answer.lower() == expected_short_answer(
                    question, scene)
            elif kind == 'conversation':
                check_sentence(question, answer, scene)
            elif kind == 'reasoning':
                check_reasoning(question, answer, scene)
    assert kinds == {'conversation', 'short', 'detail', 'reasoning',
                     'caption'}


def test_eval_records(out_dir, scenes):
    records = load(out_dir, 'eval.json')
    types = set()
    for record in records:
        scene = scene_of(record, scenes)
        assert scene['split'] == 'eval'
        human, gpt = record['conversations']
        assert human['value'].startswith('<image>\n')
        assert record['question_id'] == record['id']
        assert record['answer'] == gpt['value']
        types.add(record['type'])
        if record['type'] != 'caption':
            question = human['value'].splitlines()[1]
            assert record['answer'].lower() == expected_short_answer(
                question, scene)
    assert {'caption', 'colour', 'count', 'exists'} <= types
    assert len(records) == NUM_EVAL * 5


def test_ids_unique_and_image_placeholders(out_dir):
    for name in ('pretrain.json', 'instruct.json', 'eval.json'):
        records = load(out_dir, name)
        ids = [record['id'] for record in records]
        assert all(isinstance(id_, str) for id_ in ids)
        assert len(set(ids)) == len(ids), name
        for record in records:
            turns = record['conversations']
            assert [turn['from'] for turn in turns] == ['human', 'gpt'] * (
                len(turns) // 2)
            texts = [turn['value'] for turn in turns]
            if 'image' not in record:
                assert not any('<image>' in text for text in texts)
                continue
            assert texts[0].count('<image>') == 1
            assert not any('<image>' in text for text in texts[1:])
            assert (out_dir / record['image']).is_file()


def test_text_only_samples(out_dir):
    text_only = [record for record in load(out_dir, 'instruct.json')
                 if 'image' not in record]
    assert text_only
    for record in text_only:
        assert record['id'].startswith('text_')
        answers = record['conversations'][1::2]
        assert all(turn['value'].endswith('.') for turn in answers)


def test_corpus_holds_train_text_only(out_dir):
    corpus = (out_dir / 'corpus.txt').read_text().splitlines()
    train_text = {
        turn['value']
        for name in ('pretrain.json', 'instruct.json')
        for record in load(out_dir, name) for turn in record['conversations']
        if turn['from'] == 'gpt'
    }
    assert corpus and set(corpus) <= train_text
    assert all(line and '\n' not in line for line in corpus)


@pytest.mark.parametrize('image_size', [32, 47, 336])
def test_image_sizes(tmp_path, image_size):
    generate_demo_dataset(tmp_path, 4, 1, image_size)
    for scene in load(tmp_path, 'scenes.json')['scenes']:
        image = Image.open(tmp_path / scene['image'])
        assert image.size == (image_size, image_size)
        for obj in scene['objects']:
            x1, y1, x2, y2 = obj['box']
            centre = image.getpixel(((x1 + x2) // 2, (y1 + y2) // 2))
            assert centre == COLOURS[obj['colour']]


@pytest.mark.slow
def test_full_size_generation_takes_seconds(tmp_path):
    start = time.perf_counter()
    written = generate_demo_dataset(tmp_path)
    assert time.perf_counter() - start < 20
    assert written['num_images'] == 2200


def test_too_small_image_is_refused(tmp_path):
    with pytest.raises(ValueError, match='at least 32'):
        generate_demo_dataset(tmp_path, 1, 0, image_size=31)


def test_cli_refuses_to_overwrite_without_force(tmp_path, monkeypatch,
                                                capsys):
    argv = [str(GENERATOR), '--out-dir', str(tmp_path), '--num-train', '3',
            '--num-eval', '1']
    monkeypatch.setattr(sys, 'argv', argv)
    runpy.run_path(str(GENERATOR), run_name='__main__')
    assert 'pretrain.json: 3' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='--force'):
        runpy.run_path(str(GENERATOR), run_name='__main__')
    monkeypatch.setattr(sys, 'argv', argv[:4] + ['2', '--num-eval', '0',
                                                 '--force'])
    runpy.run_path(str(GENERATOR), run_name='__main__')
    assert len(list((tmp_path / 'images').iterdir())) == 2
