"""``mmllava/datasets/checks.py``: a folder of deliberately broken images and
a data file with one record per fault; each fault gets its code, good
records get none."""
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as photos

from mmllava.datasets.checks import (FILE_FAULT_HINTS, REASONS, WARNINGS,
                                     Problem, Report, check_data_file,
                                     check_image, load_records)
from mmllava.templates import get_template
from mmllava.templates.placeholders import move_image_to_front


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares a size, with no pixel data to speak of."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack('>I', len(body)) + kind + body
                + struct.pack('>I', zlib.crc32(kind + body)))

    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header)
            + chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def make_images(folder: Path) -> None:
    """Good and broken image files, named by what they are."""
    folder.mkdir(parents=True, exist_ok=True)
    photo = Image.fromarray(photos.astronaut()).resize((96, 96))
    jpeg, png = encoded(photo, 'JPEG'), encoded(photo, 'PNG')
    files = {
        'photo.jpg': jpeg,
        'photo.png': png,
        'cmyk.jpg': encoded(photo.convert('CMYK'), 'JPEG'),
        'sixteen_bit.png': encoded(Image.fromarray(
            (np.arange(64 * 64, dtype=np.uint16) * 16).reshape(64, 64)),
            'PNG'),
        'truncated.jpg': jpeg[:len(jpeg) // 2],
        'truncated.png': png[:len(png) // 2],
        'zero_bytes.jpg': b'',
        'text.jpg': b'not an image, just text\n',
        'one_pixel.png': encoded(Image.new('RGB', (1, 1)), 'PNG'),
        'zero_width.png': png_header(0, 64),
        'huge.png': png_header(100_000, 100_000),
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)


def turns(question: str = '<image>\nWhat is in the image?',
          answer: str = 'An astronaut.') -> list[dict]:
    return [dict(value=question, **{'from': 'human'}),
            dict(value=answer, **{'from': 'gpt'})]


LONG = ' '.join(['word'] * 120)

#: id -> (record without its id, the codes it must get). Good records: [].
RECORDS = {
    'good_jpg': (dict(image='photo.jpg', conversations=turns()), []),
    'good_png': (dict(image='./photo.png', conversations=turns()), []),
    'good_cmyk': (dict(image='cmyk.jpg', conversations=turns()), []),
    'good_16bit': (dict(image='sixteen_bit.png', conversations=turns()), []),
    'good_text_only': (dict(conversations=turns('Hi?', 'Hello.')), []),
    'good_leading_gpt': (dict(conversations=[
        {'from': 'gpt', 'value': 'dropped'}] + turns('Hi?', 'Hello.')), []),
    'good_two_rounds': (dict(image='photo.jpg', conversations=turns() + turns(
        'And the colour?', 'White.')), []),
    'truncated_jpg': (dict(image='truncated.jpg', conversations=turns()),
                      ['unreadable_image']),
    'truncated_png': (dict(image='truncated.png', conversations=turns()),
                      ['unreadable_image']),
    'zero_bytes': (dict(image='zero_bytes.jpg', conversations=turns()),
                   ['not_an_image']),
    'text_as_jpg': (dict(image='text.jpg', conversations=turns()),
                     ['not_an_image']),
    # PIL refuses to identify a file that declares a zero side.
    'zero_width': (dict(image='zero_width.png', conversations=turns()),
                   ['not_an_image']),
    'one_pixel': (dict(image='one_pixel.png', conversations=turns()),
                  ['too_small']),
    'huge': (dict(image='huge.png', conversations=turns()), ['too_large']),
    'missing': (dict(image='nowhere.jpg', conversations=turns()),
                ['missing_file']),
    'a_folder': (dict(image='.', conversations=turns()), ['missing_file']),
    'dotdot': (dict(image='../photo.jpg', conversations=turns()),
               ['path_outside_folder']),
    'absolute': (dict(image='/etc/passwd', conversations=turns()),
                 ['path_outside_folder']),
    'no_conversations': (dict(image='photo.jpg'), ['malformed_fields']),
    'bad_turn': (dict(conversations=[{'from': 'human', 'value': 3}]),
                 ['malformed_fields']),
    'image_not_str': (dict(image=[], conversations=turns()),
                      ['malformed_fields']),
    'no_answer': (dict(conversations=[{'from': 'human', 'value': 'Hi?'}]),
                  ['malformed_fields']),
    'out_of_order': (dict(image='photo.jpg', conversations=turns()
                          + [{'from': 'gpt', 'value': 'Again.'}]),
                     ['roles_out_of_order']),
    'unpaired': (dict(image='photo.jpg', conversations=turns()
                      + [{'from': 'human', 'value': 'And?'}]),
                 ['unpaired_turn']),
    'empty_answer': (dict(image='photo.jpg', conversations=turns(answer='')),
                     ['empty_answer']),
    'blank_answer': (dict(image='photo.jpg',
                          conversations=turns(answer=' \n')),
                     ['empty_answer']),
    'empty_question': (dict(conversations=turns(question=' ')),
                       ['empty_question']),
    'no_placeholder': (dict(image='photo.jpg', conversations=turns('Hi?')),
                       ['image_count_mismatch']),
    # The official preprocessing turns <im<image>age> into <image> again.
    'nested_tag': (dict(image='photo.jpg', conversations=turns(
        'What is <im<image>age>?')), ['nested_placeholder']),
    # Merged into one, as the official preprocessing does: a warning.
    'two_in_one_turn': (dict(image='photo.jpg', conversations=turns(
        '<image>\nCompare <image> with itself.')), ['placeholders_merged']),
    'two_placeholders': (dict(image='photo.jpg', conversations=turns()
                              + turns('<image> again?', 'Yes.')),
                         ['image_count_mismatch']),
    'placeholder_in_answer': (dict(image='photo.jpg', conversations=turns(
        answer='<image> here')), ['image_count_mismatch']),
    'over_max_length': (dict(image='photo.jpg',
                             conversations=turns(answer=LONG)),
                        ['over_max_length']),
    'truncated_to_nothing': (dict(image='photo.jpg', conversations=turns(
        '<image>\n' + LONG)), ['truncated_to_nothing']),
    'good_jpg_again': (dict(image='photo.jpg', conversations=turns()), []),
    # Several images (LLaVA-NeXT-Interleave): each path and file checked.
    'good_two_images': (dict(image=['photo.jpg', 'cmyk.jpg'],
                             conversations=turns('<image> or <image>?')), []),
    'two_images_one_missing': (dict(image=['photo.jpg', 'nowhere.jpg'],
                                    conversations=turns('<image> <image>')),
                               ['missing_file']),
    'two_images_one_outside': (dict(image=['../photo.jpg', 'photo.png'],
                                    conversations=turns('<image> <image>')),
                               ['path_outside_folder']),
    'two_images_one_placeholder': (dict(image=['photo.jpg', 'photo.png'],
                                        conversations=turns()),
                                   ['image_count_mismatch']),
    'two_images_over_max_length': (dict(
        image=['photo.jpg', 'photo.png'],
        conversations=turns('<image> <image>', ' '.join(['word'] * 64))),
        ['over_max_length']),
}
MAX_LENGTH, NUM_IMAGE_TOKENS = 128, 16


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('checks')
    make_images(root / 'images')
    records = [dict(id=record_id, **record)
               for record_id, (record, _) in RECORDS.items()]
    records.append(dict(id='good_jpg', image='photo.jpg',
                        conversations=turns()))  # a duplicate id
    (root / 'data.json').write_text(json.dumps(records))
    return root


@pytest.fixture(scope='module')
def report(workspace, tokenizer) -> Report:
    return check_data_file(str(workspace / 'data.json'),
                           str(workspace / 'images'), tokenizer=tokenizer,
                           template=get_template('vicuna_v1'),
                           max_length=MAX_LENGTH,
                           num_image_tokens=NUM_IMAGE_TOKENS, workers=2)


def codes_by_id(report: Report) -> dict:
    codes = {}
    for problem in report.problems + report.warnings:
        codes.setdefault(problem.record_id, []).append(problem.code)
    return codes


def test_each_fault_gets_its_code(report):
    codes = codes_by_id(report)
    for record_id, (_, expected) in RECORDS.items():
        if record_id == 'good_jpg':
            continue  # the duplicate's id, checked below
        assert codes.get(record_id, []) == expected, record_id


def test_duplicate_id_and_indices(report):
    duplicates = [problem for problem in report.problems
                  if problem.code == 'duplicate_id']
    assert len(duplicates) == 1
    assert duplicates[0].index == len(RECORDS)
    assert 'record 0' in duplicates[0].message
    # Problems name the record by its position in the file.
    ids = list(RECORDS)
    assert all(ids[problem.index] == problem.record_id
               for problem in report.problems if problem is not duplicates[0])


def test_report_counts(report):
    assert report.num_records == len(RECORDS) + 1
    assert not report.clean
    expected = sum(len(codes) for _, codes in RECORDS.values()) + 1
    assert len(report.problems) + len(report.warnings) == expected
    assert [warning.record_id for warning in report.warnings] == [
        'two_in_one_turn']
    summary = report.summary()
    assert summary['not_an_image'] == 3 and summary['duplicate_id'] == 1
    assert list(summary) == [code for code in REASONS if code in summary]
    assert set(report.to_dict()) >= {'num_records', 'summary', 'problems'}


def test_messages_say_what_and_by_how_much(report):
    by_id = {problem.record_id: problem for problem in report.problems}
    over = by_id['over_max_length'].message
    assert f'over max_length {MAX_LENGTH}' in over and 'keeps' in over
    assert 'offset' not in str(by_id['missing'])
    assert str(by_id['missing']).startswith("record 14 (id='missing'): "
                                            'missing_file: ')
    assert 'allow-outside-paths' in by_id['dotdot'].message
    # Both images count: with one, the record would fit.
    assert by_id['two_images_over_max_length'].message.startswith(
        '136 tokens (an image counted as 16), 8 over max_length 128')


def test_outside_paths_allowed(workspace):
    (workspace / 'data_outside.json').write_text(json.dumps([
        dict(id='a', image='../images/photo.jpg', conversations=turns())]))
    allowed = check_data_file(str(workspace / 'data_outside.json'),
                              str(workspace / 'images'),
                              allow_outside_paths=True)
    assert allowed.clean
    refused = check_data_file(str(workspace / 'data_outside.json'),
                              str(workspace / 'images'))
    assert [problem.code for problem in refused.problems] == [
        'path_outside_folder']


def test_without_tokenizer_skips_lengths(workspace):
    report = check_data_file(str(workspace / 'data.json'),
                             str(workspace / 'images'), workers=1)
    codes = codes_by_id(report)
    assert 'over_max_length' not in codes
    assert codes['truncated_jpg'] == ['unreadable_image']


def test_plain_template_mismatch(workspace, tokenizer):
    (workspace / 'plain.json').write_text(json.dumps([
        dict(id='two_rounds', image='photo.jpg',
             conversations=turns() + turns('More?', 'No.')),
        dict(id='caption', image='photo.jpg', conversations=turns())]))
    report = check_data_file(str(workspace / 'plain.json'),
                             str(workspace / 'images'), tokenizer=tokenizer,
                             template=get_template('plain'))
    assert [(p.record_id, p.code) for p in report.problems] == [
        ('two_rounds', 'template_mismatch')]


def test_image_size_cap_and_conversion(workspace, monkeypatch):
    photo = str(workspace / 'images/photo.jpg')
    assert check_image(photo) == []
    assert [code for code, _ in check_image(photo, max_pixels=100)] == [
        'too_large']

    def refuse(self, mode=None, *args, **kwargs):
        raise ValueError(f'conversion from {self.mode} to {mode} not '
                         'supported')

    monkeypatch.setattr(Image.Image, 'convert', refuse)
    assert [code for code, _ in check_image(photo)] == [
        'rgb_conversion_failed']


def test_invalid_utf8_in_json_list(tmp_path):
    good = json.dumps([dict(id='a', conversations=turns('Hi?', 'Ok.'))],
                      indent=1).encode()
    broken = good.replace(b'Ok.', b'Ok\xff\xfe.')
    path = tmp_path / 'data.json'
    path.write_bytes(broken)
    records, problems = load_records(str(path))
    assert len(records) == 1
    offset = broken.index(b'\xff')
    line = broken[:offset].count(b'\n') + 1
    assert [problem.code for problem in problems] == ['invalid_utf8']
    assert problems[0].index is None
    assert f'line {line}' in problems[0].message
    assert f'byte offset {offset}' in problems[0].message


def test_jsonl_collects_every_broken_line(tmp_path):
    lines = [json.dumps(dict(id=str(index),
                             conversations=turns('Hi?', 'Ok.'))).encode()
             for index in range(4)]
    lines[1] = b'{"id": "1", "conversations": ['  # cut short
    lines[2] = lines[2].replace(b'Ok.', b'O\xc3k.')
    lines.insert(3, b'')  # blank lines are skipped, as the dataset does
    path = tmp_path / 'data.jsonl'
    path.write_bytes(b'\n'.join(lines) + b'\n')
    report = check_data_file(str(path))
    assert report.num_records == 4
    assert [(p.index, p.record_id, p.code) for p in report.problems] == [
        (1, None, 'invalid_json'), (2, '2', 'invalid_utf8')]
    assert report.problems[0].message.startswith('line 2:')
    assert report.problems[1].message.startswith('line 3:')


def test_json_that_does_not_parse(tmp_path):
    path = tmp_path / 'data.json'
    path.write_text('[{"id": 1}')
    report = check_data_file(str(path))
    assert report.num_records == 0
    assert [p.code for p in report.problems] == ['invalid_json']
    path.write_text('{"id": 1}')
    problem = check_data_file(str(path)).problems[0]
    assert 'expected a json list' in str(problem)


def test_clean_file(tmp_path):
    path = tmp_path / 'data.jsonl'
    path.write_text('\n'.join(json.dumps(dict(id=index, conversations=turns(
        'Hi?', 'Ok.'))) for index in range(3)))
    report = check_data_file(str(path))
    assert report.clean and report.num_records == 3
    assert report.to_dict()['summary'] == {}


def test_problem_str():
    assert str(Problem('invalid_json', 'bad')) == 'file: invalid_json: bad'


def test_decompression_bomb_is_a_bad_record(tmp_path, decompression_bomb):
    (tmp_path / 'data.json').write_text(json.dumps([
        dict(id='bomb', image='bomb.png', conversations=turns())]))
    report = check_data_file(str(tmp_path / 'data.json'), str(tmp_path))
    assert report.num_bad_records == 1
    problem, = report.problems
    assert (problem.index, problem.record_id, problem.code) == (
        0, 'bomb', 'too_large')
    assert str(decompression_bomb) in problem.message
    assert 'decompression bomb' in problem.message
    # The pixel count against PIL's limit.
    assert f'{100_000 * 100_000} pixels' in problem.message
    assert f'{2 * Image.MAX_IMAGE_PIXELS} pixels' in problem.message


@pytest.mark.parametrize('question', [
    '<im<image>age>\nWhat is it?', 'What is <<image>image>?',
    '<image>\nAnd <im<image>age>?'])
def test_nested_tag_is_a_bad_record_naming_the_turn(question, tmp_path):
    """Removing every <image> and putting one in front (the official
    preprocessing) forms a second placeholder out of a nested tag."""
    record = dict(id='nested', image='photo.jpg',
                  conversations=turns('Hi?', 'Hello.') + turns(question))
    assert move_image_to_front(question).count('<image>') == 2
    (tmp_path / 'data.jsonl').write_text(
        json.dumps(dict(id='fine', conversations=turns('Hi?', 'Hello.')))
        + '\n' + json.dumps(record))
    report = check_data_file(str(tmp_path / 'data.jsonl'), workers=1,
                             check_images=False)
    assert [(p.index, p.record_id, p.code) for p in report.problems] == [
        (1, 'nested', 'nested_placeholder')]
    message = str(report.problems[0])
    assert message.startswith("record 1 (id='nested'): nested_placeholder: "
                              'turn 2 ')
    assert 'holds 2 <image>' in message and '1 image' in message


def test_two_placeholders_in_a_turn_are_a_warning(tmp_path):
    """Training merges them into one, as the official code does: the record
    is kept, the checker says so apart from the faults."""
    records = [dict(id='twice', image='photo.jpg', conversations=turns(
        'Hi?', 'Hello.') + turns('<image> and <image>: the same?', 'Yes.'))]
    (tmp_path / 'data.json').write_text(json.dumps(records))
    report = check_data_file(str(tmp_path / 'data.json'),
                             check_images=False)
    assert report.clean and report.num_bad_records == 0
    assert report.summary() == {}
    assert report.warning_summary() == {'placeholders_merged': 1}
    warning, = report.warnings
    assert warning.is_warning and (warning.index, warning.record_id) == (
        0, 'twice')
    assert str(warning).startswith(
        "record 0 (id='twice'): warning: placeholders_merged: turn 2 holds "
        '2 <image>')
    as_dict = report.to_dict()
    assert (as_dict['num_problems'], as_dict['num_warnings']) == (0, 1)
    assert as_dict['warnings'][0]['code'] == 'placeholders_merged'


def test_warnings_do_not_skip_the_length_checks(tmp_path, tokenizer):
    record = dict(id='twice_long', image='photo.jpg', conversations=turns(
        '<image> <image> ' + LONG))
    (tmp_path / 'data.json').write_text(json.dumps([record]))
    report = check_data_file(
        str(tmp_path / 'data.json'), check_images=False, tokenizer=tokenizer,
        template=get_template('vicuna_v1'), max_length=MAX_LENGTH,
        num_image_tokens=NUM_IMAGE_TOKENS)
    assert [p.code for p in report.problems] == ['truncated_to_nothing']
    assert [w.code for w in report.warnings] == ['placeholders_merged']


def test_text_only_record_may_mention_the_placeholder(tmp_path, tokenizer):
    """Without an image, "<image>" is text (as in the official code), to
    the checks and to the tokenizer."""
    records = [
        dict(id='asks', conversations=turns('What does <image> mean?',
                                            'A placeholder.')),
        dict(id='answers', conversations=turns(
            'How is an image marked?', 'With <image>, or <im<image>age>.')),
    ]
    (tmp_path / 'data.json').write_text(json.dumps(records))
    report = check_data_file(str(tmp_path / 'data.json'))
    assert report.clean and not report.warnings
    report = check_data_file(
        str(tmp_path / 'data.json'), tokenizer=tokenizer,
        template=get_template('vicuna_v1'), max_length=MAX_LENGTH,
        num_image_tokens=NUM_IMAGE_TOKENS)
    assert report.clean and not report.warnings


@pytest.mark.parametrize('name,content,what', [
    ('data.json', '[]', 'is an empty json list'),
    ('data.json', '', 'is empty (0 bytes)'),
    ('data.jsonl', '', 'is empty (0 bytes)'),
    ('data.jsonl', '\n \n', 'holds only white space')])
def test_a_file_without_records_is_a_file_fault(name, content, what,
                                                 tmp_path):
    path = tmp_path / name
    path.write_text(content)
    report = check_data_file(str(path))
    assert not report.clean and report.num_records == 0
    assert [str(p) for p in report.problems] == [
        f'file: no_records: no records in {path}: the file {what}']
    assert report.file_faults == report.problems


#: One file per fault of the file as a whole, and its code.
FILE_FAULTS = {
    'invalid_utf8': ('data.json', json.dumps(
        [dict(id='a', conversations=turns('Hi?', 'Ok.'))]).encode().replace(
            b'Ok.', b'Ok\xff.')),
    'invalid_json': ('data.json', b'[{"id": "a", "conversations": ['),
    'not_a_list': ('data.json', b'{"id": "a"}'),
    'no_records': ('data.jsonl', b''),
}


@pytest.mark.parametrize('fault', FILE_FAULTS)
def test_each_file_fault_says_what_helps(fault, tmp_path):
    name, content = FILE_FAULTS[fault]
    (tmp_path / name).write_bytes(content)
    report = check_data_file(str(tmp_path / name))
    code = 'invalid_json' if fault == 'not_a_list' else fault
    assert [(p.index, p.code) for p in report.file_faults] == [(None, code)]
    hints = report.file_fault_hints()
    assert hints == [f'{code}: {FILE_FAULT_HINTS[code]}']
    # skip_invalid drops records, not files: it is never the advice.
    assert 'skip_invalid=True cannot help' in hints[0]
    assert 'set skip_invalid' not in hints[0]


def test_every_file_fault_code_has_a_hint():
    assert set(FILE_FAULT_HINTS) == {'invalid_utf8', 'invalid_json',
                                     'no_records'}
    assert set(FILE_FAULT_HINTS) <= set(REASONS)
    assert not set(WARNINGS) & set(REASONS)


def test_record_faults_of_a_jsonl_file_have_no_file_hint(tmp_path):
    path = tmp_path / 'data.jsonl'
    path.write_bytes(b'{"id": "a", \n' + json.dumps(dict(
        id='b', conversations=turns('Hi?', 'Ok.'))).encode().replace(
            b'Ok.', b'Ok\xff.') + b'\n')
    report = check_data_file(str(path))
    assert [(p.index, p.code) for p in report.problems] == [
        (0, 'invalid_json'), (1, 'invalid_utf8')]
    assert report.file_faults == []
    assert report.file_fault_hints() == []
