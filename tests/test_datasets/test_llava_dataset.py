"""``mmllava/datasets/llava_dataset.py``: records shaped like the official
``blip_laion_cc_sbu_558k.json`` (stage 1) and ``llava_v1_5_mix665k.json``
(stage 2), built through the registry with the full pipeline, then batched
by a DataLoader and :class:`LLaVADataPreprocessor`.

Expected values (modality lengths, pixel values) are worked out here the way
the official LLaVA code does it, not with mmllava's helpers.
"""
import json
import logging
import os

import numpy as np
import pytest
import torch
import transformers
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from PIL import Image
from skimage import data as photos
from torch.utils.data import DataLoader

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.conversation import tokenize_conversation
from mmllava.datasets import LLaVADataset
from mmllava.datasets.checks import FILE_FAULT_HINTS
from mmllava.datasets.transforms import TokenizeConversation, loading
from mmllava.registry import DATASETS, MODELS
from mmllava.templates import get_template

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
PROCESSOR_CFG = dict(type='CLIPImageProcessor', size=dict(shortest_edge=32),
                     crop_size=dict(height=32, width=32))


def human(value):
    return {'from': 'human', 'value': value}


def gpt(value):
    return {'from': 'gpt', 'value': value}


# Shaped like blip_laion_cc_sbu_558k.json: id, image, one question, caption.
STAGE1_RECORDS = [
    dict(id='004539375', image='00453/004539375.jpg', conversations=[
        human('Render a clear and concise summary of the photo.\n<image>'),
        gpt('select luxury furniture 3 - inch gel memory foam mattress '
            'topper')]),
    dict(id='002239345', image='00223/002239345.png', conversations=[
        human('Write a terse but informative summary of the picture.\n'
              '<image>'),
        gpt('a grey watercolor painting of a cat')]),
    dict(id='001596286', image='00159/001596286.png', conversations=[
        human('<image>\nGive a brief description of the image.'),
        gpt('the rocket is ready for launch')]),
]
# Shaped like llava_v1_5_mix665k.json: multi-turn, several image folders,
# text-only ShareGPT records without "image" (some with a "model" key).
MIX665K_RECORDS = [
    dict(id='000000033471', image='coco/train2017/000000033471.jpg',
         conversations=[
             human('<image>\nWhat are the colors of the bus in the image?'),
             gpt('The bus in the image is white and red.'),
             human('What feature can be seen on the back of the bus?'),
             gpt('The back of the bus features an advertisement.')]),
    dict(id='i6IyJda_0', model='', conversations=[
        human('How to tell if a customer segment is well segmented? In 3 '
              'bullet points.'),
        gpt('1. Homogeneity: the segment should consist of customers who '
            'share similar characteristics.\n2. Distinctiveness.\n'
            '3. Reachability.')]),
    dict(id='0553213993', image='ocr_vqa/images/0553213993.png',
         conversations=[
             human('<image>\nWho wrote this book?\nAnswer the question '
                   'using a single word or phrase.'),
             gpt('Camera Press'),
             human('What is the title of this book?'),
             gpt('Photographs'),
             human('Is this a reference book?'),
             gpt('No')]),
    dict(id='wBvDHte_0', conversations=[
        human('Say hello.'), gpt('Hello!'),
        human('Now in French.'), gpt('Bonjour !')]),
    dict(id='GCC_train_002109690', image='gqa/images/2354786.jpg',
         conversations=[
             human('Is the sky dark?\n<image>'), gpt('Yes'),
             human('What is in front of the cat?'), gpt('A blanket')]),
]
IMAGES = {
    # Non-square, in several modes and formats.
    '00453/004539375.jpg': Image.fromarray(photos.coffee()),
    '00223/002239345.png': Image.fromarray(photos.chelsea()).convert('RGBA'),
    '00159/001596286.png': Image.fromarray(photos.rocket()).quantize(32),
    'coco/train2017/000000033471.jpg':
    Image.fromarray(photos.astronaut()[:, 64:448]).convert('CMYK'),
    'ocr_vqa/images/0553213993.png': Image.fromarray(photos.camera()[100:400]),
    'gqa/images/2354786.jpg': Image.fromarray(photos.chelsea()),
}


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    for relative, image in IMAGES.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return folder


def write_json(path, records):
    path.write_text(json.dumps(records))
    return str(path)


def write_jsonl(path, records):
    path.write_text(''.join(json.dumps(record) + '\n' for record in records))
    return str(path)


def pipeline(tokenizer_cfg, template, **tokenize_kwargs):
    return [
        dict(type='LoadImage'),
        dict(type='PadToSquare', mean=CLIP_MEAN),
        dict(type='ProcessImage', image_processor=PROCESSOR_CFG),
        dict(type='TokenizeConversation', tokenizer=tokenizer_cfg,
             template=template, **tokenize_kwargs),
        dict(type='PackLLaVAInputs'),
    ]


def build(data_file, image_folder='', pipeline=(), **kwargs):
    with DefaultScope.overwrite_default_scope('mmllava'):
        return DATASETS.build(
            dict(type='LLaVADataset', data_file=data_file,
                 image_folder=str(image_folder), pipeline=list(pipeline),
                 **kwargs))


def official_pixel_values(path):
    """The official LLaVA-1.5 image path: RGB, expand2square, processor."""
    image = Image.open(path).convert('RGB')
    width, height = image.size
    background = tuple(int(x * 255) for x in CLIP_MEAN)
    side = max(width, height)
    square = Image.new(image.mode, (side, side), background)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    processor = transformers.CLIPImageProcessor(
        size=dict(shortest_edge=32), crop_size=dict(height=32, width=32))
    return processor.preprocess(square, return_tensors='pt')['pixel_values']


def official_modality_lengths(records):
    """``LazySupervisedDataset.modality_lengths`` of the official code."""
    lengths = []
    for sample in records:
        cur_len = sum(len(conv['value'].split())
                      for conv in sample['conversations'])
        lengths.append(cur_len if 'image' in sample else -cur_len)
    return lengths


def check_sample(item, record, image_folder, tokenizer, template):
    inputs, data_sample = item['inputs'], item['data_samples']
    assert inputs['input_ids'].dtype == torch.long
    assert inputs['labels'].dtype == torch.long
    assert inputs['input_ids'].shape == inputs['labels'].shape
    expected_ids, expected_labels = tokenize_conversation(
        record['conversations'], get_template(template), tokenizer,
        'image' in record)
    assert inputs['input_ids'].tolist() == expected_ids
    assert inputs['labels'].tolist() == expected_labels
    assert (inputs['labels'] != IGNORE_INDEX).any()
    assert data_sample.sample_id == record['id']
    if 'image' in record:
        path = str(image_folder / record['image'])
        assert data_sample.img_path == path
        assert inputs['pixel_values'].shape == (1, 3, 32, 32)
        torch.testing.assert_close(inputs['pixel_values'],
                                   official_pixel_values(path), rtol=0,
                                   atol=0)
        assert (inputs['input_ids'] == IMAGE_TOKEN_INDEX).sum() == 1
    else:
        assert data_sample.img_path is None
        assert inputs['pixel_values'].numel() == 0
        assert (inputs['input_ids'] == IMAGE_TOKEN_INDEX).sum() == 0


@pytest.mark.parametrize('writer', [write_json, write_jsonl])
@pytest.mark.parametrize('records,template', [
    (STAGE1_RECORDS, 'plain'), (MIX665K_RECORDS, 'vicuna_v1')])
def test_records_through_the_full_pipeline(writer, records, template,
                                           tmp_path, image_folder,
                                           tokenizer_cfg, tokenizer):
    suffix = '.json' if writer is write_json else '.jsonl'
    data_file = writer(tmp_path / f'data{suffix}', records)
    dataset = build(data_file, image_folder,
                    pipeline(tokenizer_cfg, template))
    assert isinstance(dataset, LLaVADataset)
    assert len(dataset) == len(records)
    for index, record in enumerate(records):
        check_sample(dataset[index], record, image_folder, tokenizer,
                     template)


def test_loading_tokenizes_and_opens_nothing(tmp_path, image_folder,
                                             tokenizer_cfg, monkeypatch):
    calls = []
    transform = TokenizeConversation.transform

    def counting_transform(self, results):
        calls.append(results['sample_id'])
        return transform(self, results)

    monkeypatch.setattr(TokenizeConversation, 'transform', counting_transform)
    opened = []
    image_open = Image.open

    def counting_open(path, *args, **kwargs):
        opened.append(path)
        return image_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, 'open', counting_open)
    data_file = write_json(tmp_path / 'mix.json', MIX665K_RECORDS)
    dataset = build(data_file, image_folder,
                    pipeline(tokenizer_cfg, 'vicuna_v1'))
    assert len(dataset) == len(MIX665K_RECORDS)
    assert dataset.modality_lengths.shape == (len(MIX665K_RECORDS), )
    assert calls == [] and opened == []
    dataset[2]
    assert calls == ['0553213993'] and len(opened) == 1
    dataset[1]
    assert calls == ['0553213993', 'i6IyJda_0'] and len(opened) == 1


def test_modality_lengths_follow_the_official_definition(tmp_path):
    records = STAGE1_RECORDS + MIX665K_RECORDS
    dataset = build(write_jsonl(tmp_path / 'all.jsonl', records))
    lengths = dataset.modality_lengths
    expected = official_modality_lengths(records)
    assert lengths.tolist() == expected
    assert lengths.dtype == np.int64
    assert (lengths != 0).all()
    assert [length > 0 for length in lengths] == \
        ['image' in record for record in records]


def test_image_paths_resolve_against_image_folder(tmp_path, image_folder):
    dataset = build(write_json(tmp_path / 'd.json', MIX665K_RECORDS),
                    image_folder)
    for index, record in enumerate(MIX665K_RECORDS):
        info = dataset.get_data_info(index)
        assert info['sample_id'] == record['id']
        assert info['conversations'] == record['conversations']
        if 'image' in record:
            assert info['img_path'] == str(image_folder / record['image'])
        else:
            assert info['img_path'] is None


@pytest.mark.slow
def test_extra_keys_reach_the_data_info(tmp_path):
    data_file = write_json(tmp_path / 'd.json', MIX665K_RECORDS)
    plain = build(data_file)
    assert all('model' not in plain.get_data_info(index)
               for index in range(len(plain)))
    dataset = build(data_file, extra_keys=('model', ))
    assert [dataset.get_data_info(index).get('model')
            for index in range(len(dataset))] == \
        [record.get('model') for record in MIX665K_RECORDS]
    with pytest.raises(ValueError, match=r"extra_keys \['img_path'\]"):
        build(data_file, extra_keys=('img_path', ))


GOOD = STAGE1_RECORDS[0]


@pytest.mark.parametrize('bad_record,expected', [
    ('just a string', ['record 1', 'id=None', 'expected an object']),
    (dict(id='abc', image='a.jpg'), ['record 1', "id='abc'",
                                     '"conversations"']),
    (dict(id='abc', conversations=[]), ['record 1', "id='abc'",
                                        '"conversations"']),
    (dict(id='t1', conversations=[{'from': 'user', 'value': 'Hi'},
                                  gpt('Hello')]),
     ['record 1', "id='t1'", 'turn 0']),
    (dict(id='t2', conversations=[human('Hi'), {'from': 'gpt', 'value': 3}]),
     ['record 1', "id='t2'", 'turn 1']),
    (dict(id=7, conversations=[human('Hi'), human('Anyone?')]),
     ['record 1', 'id=7', '"gpt"']),
    # The official preprocessing drops a leading answer: nothing is left to
    # learn, and the sample would get no supervised token.
    (dict(id='lead', conversations=[gpt('Hello!'), human('Anyone?')]),
     ['record 1', "id='lead'", '"gpt"']),
    (dict(id='img', image=['a.jpg', 3], conversations=[human('<image>'),
                                                       gpt('A cat')]),
     ['record 1', "id='img'", '"image"']),
])
@pytest.mark.parametrize('writer', [write_json, write_jsonl])
def test_bad_record_names_index_and_id(bad_record, expected, writer,
                                       tmp_path):
    data_file = writer(tmp_path / ('bad.json' if writer is write_json
                                   else 'bad.jsonl'), [GOOD, bad_record])
    with pytest.raises(ValueError) as info:
        build(data_file)
    message = str(info.value)
    assert data_file in message
    for text in expected:
        assert text in message, (text, message)


def test_invalid_json_names_the_file(tmp_path):
    data_file = tmp_path / 'broken.json'
    data_file.write_text('[{"id": "1", "conversations": [')
    with pytest.raises(ValueError, match='broken.json'):
        build(str(data_file))


def test_invalid_jsonl_line_names_the_line(tmp_path):
    data_file = tmp_path / 'broken.jsonl'
    # Line 2 is blank and skipped; line 4 is the broken one.
    data_file.write_text(json.dumps(GOOD) + '\n\n' + json.dumps(GOOD) +
                         '\n{"id": "x", \n' + json.dumps(GOOD) + '\n')
    with pytest.raises(ValueError) as info:
        build(str(data_file))
    assert 'broken.jsonl' in str(info.value)
    assert 'line 4' in str(info.value)


def test_top_level_not_a_list_names_the_file(tmp_path):
    data_file = write_json(tmp_path / 'object.json', dict(data=[GOOD]))
    with pytest.raises(ValueError) as info:
        build(data_file)
    assert 'object.json' in str(info.value) and 'list' in str(info.value)


def test_missing_data_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.json'):
        build(str(tmp_path / 'nowhere.json'))


def test_missing_image_fails_at_getitem_naming_sample_and_path(
        tmp_path, tokenizer_cfg):
    data_file = write_json(tmp_path / 'd.json', STAGE1_RECORDS[:1])
    dataset = build(data_file, tmp_path / 'no_images',
                    pipeline(tokenizer_cfg, 'plain'))
    assert len(dataset) == 1
    with pytest.raises(OSError) as info:
        dataset[0]
    assert "'004539375'" in str(info.value)
    assert str(tmp_path / 'no_images' / '00453/004539375.jpg') in \
        str(info.value)


def test_dropped_sample_is_replaced_by_another(tmp_path, image_folder,
                                               tokenizer_cfg, tokenizer):
    long_question = human('<image>\n' + 'Describe every detail. ' * 60)
    records = [
        dict(id='too-long', image='gqa/images/2354786.jpg',
             conversations=[long_question, gpt('A cat.')]),
        MIX665K_RECORDS[1],
    ]
    num_image_tokens = 8
    dataset = build(write_json(tmp_path / 'd.json', records), image_folder,
                    pipeline(tokenizer_cfg, 'vicuna_v1', max_length=128,
                             num_image_tokens=num_image_tokens))
    long_ids, _ = tokenize_conversation(
        records[0]['conversations'], get_template('vicuna_v1'), tokenizer,
        True)
    # The question alone overflows max_length, so nothing supervised fits.
    assert len(long_ids) > 128
    np.random.seed(0)
    item = dataset[0]
    check_sample(item, records[1], image_folder, tokenizer, 'vicuna_v1')
    tokenize = dataset.pipeline.transforms[3]
    assert isinstance(tokenize, TokenizeConversation)
    assert tokenize.num_dropped >= 1
    assert tokenize.num_truncated == 0


def test_dataloader_and_data_preprocessor_batch(tmp_path, image_folder,
                                                tokenizer_cfg):
    dataset = build(write_json(tmp_path / 'd.json', MIX665K_RECORDS),
                    image_folder, pipeline(tokenizer_cfg, 'vicuna_v1'))
    with DefaultScope.overwrite_default_scope('mmllava'):
        preprocessor = MODELS.build(dict(type='LLaVADataPreprocessor'))
    loader = DataLoader(dataset, batch_size=3, shuffle=False,
                        collate_fn=pseudo_collate)
    batches = [preprocessor(data) for data in loader]
    assert [len(batch['num_images']) for batch in batches] == [3, 2]
    for batch_index, batch in enumerate(batches):
        items = [dataset[batch_index * 3 + i]
                 for i in range(len(batch['num_images']))]
        input_ids, labels = batch['input_ids'], batch['labels']
        mask = batch['attention_mask']
        lengths = [len(item['inputs']['input_ids']) for item in items]
        assert input_ids.shape == labels.shape == mask.shape == \
            (len(items), max(lengths))
        assert mask.sum(1).tolist() == lengths
        for row, item in enumerate(items):
            length = lengths[row]
            assert mask[row, :length].all() and not mask[row, length:].any()
            assert torch.equal(input_ids[row, :length],
                               item['inputs']['input_ids'])
            assert torch.equal(labels[row, :length],
                               item['inputs']['labels'])
            assert (labels[row, length:] == IGNORE_INDEX).all()
        num_images = [int((ids == IMAGE_TOKEN_INDEX).sum())
                      for ids in input_ids]
        assert batch['num_images'] == num_images
        assert batch['num_images'] == [
            len(item['inputs']['pixel_values']) for item in items]
        expected_pixels = [item['inputs']['pixel_values'] for item in items
                           if len(item['inputs']['pixel_values'])]
        assert batch['pixel_values'].shape == (sum(num_images), 3, 32, 32)
        torch.testing.assert_close(batch['pixel_values'],
                                   torch.cat(expected_pixels), rtol=0,
                                   atol=0)
        assert [sample.sample_id for sample in batch['data_samples']] == [
            record['id']
            for record in MIX665K_RECORDS[batch_index * 3:][:len(items)]]
    # The batch mixes image and text-only samples.
    assert batches[0]['num_images'] == [1, 0, 1]


#: LLaVA-NeXT-Interleave's record format: a list of images, one <image>
#: each, anywhere in the human turns.
SEVERAL_IMAGE_RECORDS = [
    dict(id='pair-1', image=['00453/004539375.jpg', 'gqa/images/2354786.jpg'],
         conversations=[
             human('Image 1: <image>\nImage 2: <image>\nWhat differs?'),
             gpt('A cup of coffee, then a cat.')]),
    dict(id='later-2', image=['ocr_vqa/images/0553213993.png',
                              '00159/001596286.png'],
         conversations=[human('Who is this? <image>'), gpt('A man.'),
                        human('And this: <image>'), gpt('A rocket.')]),
]


def test_several_images_per_record_through_the_pipeline(
        tmp_path, image_folder, tokenizer_cfg):
    """Each image padded and processed on its own, in placeholder order;
    the batch counts each sample's images."""
    records = SEVERAL_IMAGE_RECORDS + [MIX665K_RECORDS[0]]
    dataset = build(write_json(tmp_path / 'd.json', records), image_folder,
                    pipeline(tokenizer_cfg, 'vicuna_v1'))
    assert dataset.get_data_info(0)['img_path'] == [
        str(image_folder / path) for path in records[0]['image']]
    assert dataset.modality_lengths[0] > 0
    with DefaultScope.overwrite_default_scope('mmllava'):
        preprocessor = MODELS.build(dict(type='LLaVADataPreprocessor'))
    batch = preprocessor(pseudo_collate([dataset[i] for i in range(3)]))
    assert batch['num_images'] == [2, 2, 1]
    assert [int((ids == IMAGE_TOKEN_INDEX).sum())
            for ids in batch['input_ids']] == [2, 2, 1]
    paths = [path for record in records for path in (
        record['image'] if isinstance(record['image'], list)
        else [record['image']])]
    torch.testing.assert_close(
        batch['pixel_values'],
        torch.cat([official_pixel_values(str(image_folder / path))
                   for path in paths]), rtol=0, atol=0)


def test_several_images_and_placeholders_that_differ_name_the_record(
        tmp_path, image_folder):
    record = dict(SEVERAL_IMAGE_RECORDS[0], id='short-3',
                  image=SEVERAL_IMAGE_RECORDS[0]['image'] * 2)
    with pytest.raises(ValueError) as info:
        build(write_json(tmp_path / 'd.json', [record]), image_folder)
    assert "record 0 (id='short-3'): image_count_mismatch: the human turns " \
        'hold 2 <image> where rendering places them (turn 0: 2), the ' \
        'record has 4 images' in str(info.value)


def test_text_only_batch_has_no_pixel_values(tmp_path, tokenizer_cfg):
    text_only = [record for record in MIX665K_RECORDS
                 if 'image' not in record]
    dataset = build(write_json(tmp_path / 'd.json', text_only), '',
                    pipeline(tokenizer_cfg, 'vicuna_v1'))
    with DefaultScope.overwrite_default_scope('mmllava'):
        preprocessor = MODELS.build(dict(type='LLaVADataPreprocessor'))
    batch = preprocessor(next(iter(DataLoader(
        dataset, batch_size=2, collate_fn=pseudo_collate))))
    assert batch['pixel_values'] is None
    assert batch['num_images'] == [0, 0]
    assert batch['input_ids'].shape[0] == 2


# --- checks on load and at fetch time ----------------------------------------

class Capture(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append((record.levelno, record.getMessage()))


@pytest.fixture
def warnings_log():
    logger = MMLogger.get_current_instance()
    capture = Capture()
    logger.addHandler(capture)
    yield capture.messages
    logger.removeHandler(capture)


BAD_RECORDS = [
    dict(id='004539375', image='00453/004539375.jpg',
         conversations=[human('<image>\nWhat?'), gpt('A mattress.')]),
    dict(id='empty', conversations=[human('Hi'), gpt('  ')]),
    dict(id='004539375', conversations=[human('Hi'), gpt('Hello')]),
    dict(id='escape', image='../secret.jpg',
         conversations=[human('<image>\nWhat?'), gpt('A secret.')]),
    dict(id='ok', conversations=[human('Hi'), gpt('Hello')]),
]


def test_problems_stop_loading_with_a_listed_report(tmp_path, image_folder):
    data_file = write_json(tmp_path / 'bad.json', BAD_RECORDS)
    with pytest.raises(ValueError) as info:
        build(data_file, image_folder)
    message = str(info.value)
    assert data_file in message
    for text in ["record 1 (id='empty'): empty_answer",
                 "record 2 (id='004539375'): duplicate_id",
                 "record 3 (id='escape'): path_outside_folder",
                 'empty_answer: 1', 'duplicate_id: 1',
                 'path_outside_folder: 1', 'allow_outside_paths=True',
                 f'python tools/data/check_dataset.py {data_file}']:
        assert text in message, (text, message)
    assert '  record 0 ' not in message and 'record 4' not in message


def test_only_the_first_problems_are_listed(tmp_path):
    records = [dict(id=str(index), conversations=[human('Hi'), gpt('')])
               for index in range(25)]
    with pytest.raises(ValueError) as info:
        build(write_jsonl(tmp_path / 'empty.jsonl', records))
    message = str(info.value)
    assert 'record 9 ' in message and 'record 10 ' not in message
    assert '15 more' in message and 'empty_answer: 25' in message


def test_skip_invalid_drops_bad_records_and_logs_them(tmp_path, image_folder,
                                                      warnings_log):
    dataset = build(write_json(tmp_path / 'bad.json', BAD_RECORDS),
                    image_folder, skip_invalid=True)
    assert [dataset.get_data_info(index)['sample_id']
            for index in range(len(dataset))] == ['004539375', 'ok']
    assert dataset.modality_lengths.tolist() == [4, -2]
    warnings = [message for level, message in warnings_log
                if level == logging.WARNING]
    assert len(warnings) == 1
    assert 'skipping 3 of 5 records' in warnings[0]
    assert 'duplicate_id: 1' in warnings[0]
    assert "record 3 (id='escape'): path_outside_folder" in warnings[0]


def test_skip_invalid_still_stops_on_a_broken_file(tmp_path):
    data_file = tmp_path / 'broken.json'
    data_file.write_text('[{"id": "1", "conversations": [')
    with pytest.raises(ValueError, match='invalid_json'):
        build(str(data_file), skip_invalid=True)


def test_skip_invalid_drops_a_broken_jsonl_line(tmp_path):
    data_file = tmp_path / 'broken.jsonl'
    data_file.write_text(json.dumps(GOOD) + '\n{"id": "x", \n')
    dataset = build(str(data_file), skip_invalid=True)
    assert len(dataset) == 1


@pytest.mark.parametrize('image', ['../outside.jpg', '/abs/outside.jpg',
                                   'a/../../outside.jpg'])
def test_paths_outside_image_folder_are_refused_unless_allowed(
        image, tmp_path, image_folder):
    record = dict(id='out', image=image,
                  conversations=[human('<image>\nWhat?'), gpt('Out.')])
    data_file = write_json(tmp_path / 'out.json', [record])
    with pytest.raises(ValueError, match='path_outside_folder'):
        build(data_file, image_folder)
    dataset = build(data_file, image_folder, allow_outside_paths=True)
    assert dataset.get_data_info(0)['img_path'] == \
        os.path.join(str(image_folder), image)


def test_check_images_reads_the_files_on_load(tmp_path, image_folder):
    (tmp_path / 'text.jpg').write_text('not an image')
    records = [dict(id='text', image='text.jpg',
                    conversations=[human('<image>\nWhat?'), gpt('Text.')]),
               dict(id='gone', image='gone.jpg',
                    conversations=[human('<image>\nWhat?'), gpt('None.')])]
    data_file = write_json(tmp_path / 'img.json', records)
    assert len(build(data_file, tmp_path)) == 2  # files unread by default
    with pytest.raises(ValueError) as info:
        build(data_file, tmp_path, check_images=True)
    assert 'not_an_image: 1' in str(info.value)
    assert 'missing_file: 1' in str(info.value)


@pytest.fixture
def deleted_image(tmp_path, image_folder, monkeypatch):
    """Two records; the first one's image is deleted after loading. Returns
    a builder and the files ``LoadImage`` tried to open."""
    folder = tmp_path / 'images'
    folder.mkdir()
    Image.fromarray(photos.coffee()).save(folder / 'gone.jpg')
    Image.fromarray(photos.chelsea()).save(folder / 'kept.jpg')
    records = [
        dict(id='gone', image='gone.jpg',
             conversations=[human('<image>\nWhat?'), gpt('Coffee.')]),
        dict(id='kept', image='kept.jpg',
             conversations=[human('<image>\nWhat?'), gpt('A cat.')])]
    data_file = write_json(tmp_path / 'd.json', records)
    opened = []

    def counting_open(path, *args, **kwargs):
        opened.append(os.path.basename(path))
        return open(path, *args, **kwargs)

    # LoadImage reads the file with the builtin open.
    monkeypatch.setattr(loading, 'open', counting_open, raising=False)

    def make(**kwargs):
        dataset = build(data_file, folder, [dict(type='LoadImage')],
                        **kwargs)
        (folder / 'gone.jpg').unlink()
        # The refetch picks the other sample, not a random one.
        dataset._rand_another = lambda: 1
        return dataset

    return make, opened


def test_deleted_image_is_retried_once_then_raises(deleted_image):
    make, opened = deleted_image
    dataset = make()
    with pytest.raises(OSError) as info:
        dataset[0]
    assert "'gone'" in str(info.value) and 'gone.jpg' in str(info.value)
    assert opened == ['gone.jpg', 'gone.jpg']


def test_deleted_image_is_retried_once_then_dropped(deleted_image,
                                                    warnings_log):
    make, opened = deleted_image
    dataset = make(skip_invalid=True)
    item = dataset[0]
    assert item['sample_id'] == 'kept'
    assert opened == ['gone.jpg', 'gone.jpg', 'kept.jpg']
    assert dataset.num_dropped_fetches == 1
    dataset[0]
    assert dataset.num_dropped_fetches == 2
    warnings = [message for level, message in warnings_log
                if level == logging.WARNING]
    assert len(warnings) == 2
    assert "Dropped sample 'gone'" in warnings[0]
    assert 'gone.jpg' in warnings[0] and '1 dropped so far' in warnings[0]
    assert '2 dropped so far' in warnings[1]


# --- bad input caught where it enters (image bombs, tags, empty files) -------

@pytest.fixture
def with_bomb(tmp_path, decompression_bomb):
    """A record whose image is a decompression bomb, then a good one."""
    Image.fromarray(photos.chelsea()).save(tmp_path / 'kept.jpg')
    records = [
        dict(id='bomb', image=decompression_bomb.name,
             conversations=[human('<image>\nWhat?'), gpt('A bomb.')]),
        dict(id='kept', image='kept.jpg',
             conversations=[human('<image>\nWhat?'), gpt('A cat.')])]
    return write_json(tmp_path / 'd.json', records)


def test_decompression_bomb_stops_naming_sample_and_file(with_bomb,
                                                         tmp_path):
    dataset = build(with_bomb, tmp_path, [dict(type='LoadImage')])
    with pytest.raises(OSError) as info:
        dataset[0]
    message = str(info.value)
    assert message.startswith(f"Sample 'bomb': cannot read image "
                              f"{tmp_path / 'bomb.png'}: PIL refuses it as "
                              'a possible decompression bomb: ')
    assert f'{100_000 * 100_000} pixels' in message


def test_decompression_bomb_is_dropped_with_skip_invalid(with_bomb, tmp_path,
                                                         warnings_log):
    dataset = build(with_bomb, tmp_path, [dict(type='LoadImage')],
                    skip_invalid=True)
    dataset._rand_another = lambda: 1
    assert dataset[0]['sample_id'] == 'kept'
    assert dataset.num_dropped_fetches == 1
    warning, = [message for level, message in warnings_log
                if level == logging.WARNING]
    assert "Dropped sample 'bomb'" in warning
    assert 'decompression bomb' in warning and '1 dropped so far' in warning


def test_decompression_bomb_is_a_bad_record_with_check_images(
        with_bomb, tmp_path, warnings_log):
    with pytest.raises(ValueError) as info:
        build(with_bomb, tmp_path, check_images=True)
    assert "record 0 (id='bomb'): too_large: " in str(info.value)
    assert 'decompression bomb' in str(info.value)
    dataset = build(with_bomb, tmp_path, check_images=True,
                    skip_invalid=True)
    assert [dataset.get_data_info(index)['sample_id']
            for index in range(len(dataset))] == ['kept']
    warning, = [message for level, message in warnings_log
                if level == logging.WARNING]
    assert 'skipping 1 of 2 records' in warning and 'too_large: 1' in warning


@pytest.mark.parametrize('question', ['<im<image>age>\nWhat?',
                                      '<image>\nAnd <<image>image>?'])
def test_nested_tag_stops_loading_naming_record_and_turn(question, tmp_path,
                                                         image_folder):
    """The official preprocessing turns <im<image>age> into a second
    <image>, which would stop training at that sample's first draw."""
    records = [GOOD, dict(id='nested', image=GOOD['image'], conversations=[
        human('Hi.'), gpt('Hello.'), human(question), gpt('A mattress.')])]
    data_file = write_jsonl(tmp_path / 'nested.jsonl', records)
    with pytest.raises(ValueError) as info:
        build(data_file, image_folder)
    assert "record 1 (id='nested'): nested_placeholder: turn 2 " in \
        str(info.value)
    dataset = build(data_file, image_folder, skip_invalid=True)
    assert len(dataset) == 1


def test_two_placeholders_in_a_turn_load_with_a_warning(
        tmp_path, image_folder, tokenizer_cfg, tokenizer, warnings_log):
    record = dict(id='twice', image=GOOD['image'], conversations=[
        human('<image>\nIs this <image> a mattress?'), gpt('Yes.')])
    dataset = build(write_json(tmp_path / 'twice.json', [record]),
                    image_folder, pipeline(tokenizer_cfg, 'vicuna_v1'))
    assert len(dataset) == 1
    warning, = [message for level, message in warnings_log
                if level == logging.WARNING]
    assert '1 warning in records kept for training' in warning
    assert "record 0 (id='twice'): warning: placeholders_merged: turn 0 " \
        'holds 2 <image>' in warning
    # Merged into one, as the official preprocessing does.
    assert (dataset[0]['inputs']['input_ids'] == IMAGE_TOKEN_INDEX).sum() == 1


def test_text_only_record_mentioning_the_placeholder_trains_as_text(
        tmp_path, tokenizer_cfg):
    records = [dict(id='asks', conversations=[
        human('What does <image> mean in LLaVA data?'),
        gpt('It marks where the image goes; <im<image>age> is no tag.')])]
    dataset = build(write_json(tmp_path / 'text.json', records), '',
                    pipeline(tokenizer_cfg, 'vicuna_v1'))
    assert len(dataset) == 1
    assert dataset.get_data_info(0)['img_path'] is None
    inputs = dataset[0]['inputs']
    assert (inputs['input_ids'] != IMAGE_TOKEN_INDEX).all()
    assert inputs['pixel_values'].numel() == 0


@pytest.mark.parametrize('name,content', [
    ('empty.json', '[]'), ('empty.jsonl', ''), ('blank.jsonl', '\n\n')])
@pytest.mark.parametrize('skip_invalid', [False, True])
def test_a_file_without_records_stops_loading(name, content, skip_invalid,
                                              tmp_path):
    """Not mmengine's "need at least one array to concatenate" later."""
    data_file = tmp_path / name
    data_file.write_text(content)
    with pytest.raises(ValueError) as info:
        build(str(data_file), skip_invalid=skip_invalid)
    message = str(info.value)
    assert message.startswith(f'{data_file}: 1 problem in the file as a '
                              'whole; stopping before training.')
    assert f'file: no_records: no records in {data_file}' in message


def test_no_record_left_after_skipping_stops_loading(tmp_path):
    data_file = write_jsonl(tmp_path / 'all_bad.jsonl', [
        dict(id='a', conversations=[human('Hi')]),
        dict(id='b', conversations=[human('Hi'), gpt(' ')])])
    with pytest.raises(ValueError) as info:
        build(data_file, skip_invalid=True)
    assert str(info.value).startswith(
        f'{data_file}: no records left: all 2 have problems and '
        'skip_invalid=True dropped them')


#: A file per fault of the file as a whole: its code and the text that
#: breaks it.
FILE_FAULTS = [
    ('invalid_utf8', 'bad_bytes.json',
     json.dumps([GOOD]).encode().replace(b'mattress', b'matt\xffress')),
    ('invalid_json', 'cut.json', b'[{"id": "a", "conversations": ['),
    ('invalid_json', 'object.json', json.dumps(dict(data=[GOOD])).encode()),
    ('no_records', 'empty.json', b'[]'),
]


@pytest.mark.parametrize('code,name,content', FILE_FAULTS)
def test_each_file_fault_suggests_only_what_helps(code, name, content,
                                                  tmp_path):
    """skip_invalid=True drops records: it does not help with a fault of the
    file as a whole, so the message says so instead of suggesting it."""
    data_file = tmp_path / name
    data_file.write_bytes(content)
    messages = []
    for skip_invalid in (False, True):
        with pytest.raises(ValueError) as info:
            build(str(data_file), skip_invalid=skip_invalid)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    message = messages[0]
    assert f'  file: {code}: ' in message
    assert f'What helps:\n  {code}: {FILE_FAULT_HINTS[code]}' in message
    assert 'set skip_invalid=True' not in message
    assert 'allow_outside_paths' not in message


def test_record_faults_suggest_skip_invalid_which_helps(tmp_path):
    data_file = write_jsonl(tmp_path / 'broken.jsonl', [GOOD])
    with open(data_file, 'a') as file:
        file.write('{"id": "x", \n')
    with pytest.raises(ValueError) as info:
        build(data_file)
    assert 'set skip_invalid=True on the dataset to drop these records' in \
        str(info.value)
    assert 'What helps' not in str(info.value)
    assert len(build(data_file, skip_invalid=True)) == 1
