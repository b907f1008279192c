"""Symbolic context: COCO boxes normalised by hand-computed numbers, the
simple json, and errors that name the record."""
import json

import pytest

from mmllava.datagen.context import (format_context, load_coco_contexts,
                                     load_simple_contexts)


def test_coco_context_matches_hand_computed_lines(coco_files):
    captions, instances = coco_files
    contexts = load_coco_contexts(str(captions), str(instances))
    # Image 3 has boxes but no caption: nothing to tell the model.
    assert [c.image_id for c in contexts] == ['1', '2']
    assert contexts[0].image == '000000000001.jpg'
    # [64, 48, 256, 192] on 640x480: 64/640, 48/480, 320/640, 240/480.
    # [101, 37, 200, 150]: 101/640=0.1578, 37/480=0.0771, 301/640=0.4703,
    # 187/480=0.3896.
    assert format_context(contexts[0]) == (
        'A dog runs on grass.\n'
        'A brown dog in a park.\n'
        '\n'
        'dog: [0.100, 0.100, 0.500, 0.500]\n'
        'dog: [0.158, 0.077, 0.470, 0.390]')
    # [450, 300, 60, 120] on 500x400 overruns the right and bottom edges:
    # 510/500 and 420/400 are clamped to 1.
    assert format_context(contexts[1]) == (
        'Two cups on a table.\n\ncup: [0.900, 0.750, 1.000, 1.000]')


def test_coco_captions_only(coco_files):
    contexts = load_coco_contexts(str(coco_files[0]))
    assert format_context(contexts[0]) == ('A dog runs on grass.\n'
                                           'A brown dog in a park.')


def test_coco_errors_name_the_annotation(coco_files):
    captions, instances = coco_files
    data = json.loads(instances.read_text())
    data['annotations'][1]['category_id'] = 999
    instances.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r'instances.json: annotation 1 '
                       r"\(id=21\) needs a known \"category_id\""):
        load_coco_contexts(str(captions), str(instances))


def test_simple_contexts(tmp_path):
    path = tmp_path / 'contexts.jsonl'
    path.write_text(json.dumps(dict(
        id=7, image='a/b.jpg', captions=['A cat. '],
        boxes=[dict(category='cat', bbox=[0.25, 0, 1, 0.5])])) + '\n')
    (context,) = load_simple_contexts(str(path))
    assert (context.image_id, context.image) == ('7', 'a/b.jpg')
    assert format_context(context) == \
        'A cat.\n\ncat: [0.250, 0.000, 1.000, 0.500]'


@pytest.mark.parametrize('record, message', [
    (dict(id='x', image='x.jpg', captions=[]), 'non-empty list'),
    (dict(id='x', image='x.jpg', captions=['c'],
          boxes=[dict(category='cat', bbox=[10, 20, 30, 40])]),
     'normalised to'),
    (dict(id='x', image='x.jpg', captions=['c'],
          boxes=[dict(category='cat', bbox=[0.5, 0, 0.2, 1])]),
     'normalised to'),
    (dict(image='x.jpg', captions=['c']), 'needs an "id"'),
])
def test_simple_context_errors_name_the_record(tmp_path, record, message):
    path = tmp_path / 'contexts.json'
    path.write_text(json.dumps([dict(id='ok', image='ok.jpg',
                                     captions=['fine']), record]))
    with pytest.raises(ValueError, match=r'contexts.json: record 1 .*' +
                       message):
        load_simple_contexts(str(path))
