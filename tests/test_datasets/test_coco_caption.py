"""``mmllava/datasets/coco_caption.py``: a Karpathy split in BLIP's layout
(``coco_karpathy_test.json``), its samples, the pipeline, and bad input."""
import json

import pytest
from mmengine.registry import DefaultScope
from PIL import Image
from skimage import data as photos

from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.datasets import COCOKarpathyCaptionDataset
from mmllava.datasets.coco_caption import coco_image_id
from mmllava.registry import DATASETS

PROMPT = 'Provide a one-sentence caption for the provided image.'
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
PROCESSOR_CFG = dict(type='CLIPImageProcessor', size=dict(shortest_edge=32),
                     crop_size=dict(height=32, width=32))
# The first records of BLIP's coco_karpathy_test.json.
RECORDS = [
    {'image': 'val2014/COCO_val2014_000000391895.jpg', 'caption': [
        'A man with a red helmet on a small moped on a dirt road. ',
        'Man riding a motor bike on a dirt road on the countryside.',
        'A man riding on the back of a motorcycle.',
        'A dirt path with a young person on a motor bike rests to the '
        'foreground of a verdant area with a bridge and a background of '
        'cloud-wreathed mountains. ',
        'A man in a red shirt and a red hat is on a motorcycle on a hill '
        'side.']},
    {'image': 'val2014/COCO_val2014_000000060623.jpg', 'caption': [
        'A young girl inhales with the intent of blowing out a candle. ',
        'A young girl is preparing to blow out her candle.']},
    {'image': 'val2014/COCO_val2014_000000483108.jpg', 'caption': [
        'A man on a bicycle riding next to a train']},
]
IMAGES = [photos.astronaut(), photos.coffee(), photos.chelsea()]


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('coco')
    (folder / 'val2014').mkdir()
    for record, pixels in zip(RECORDS, IMAGES):
        Image.fromarray(pixels).save(folder / record['image'])
    return folder


def write_json(path, records):
    path.write_text(json.dumps(records))
    return str(path)


def build(data_file, image_folder='', pipeline=(), prompt=PROMPT, **kwargs):
    with DefaultScope.overwrite_default_scope('mmllava'):
        return DATASETS.build(
            dict(type='COCOKarpathyCaptionDataset', data_file=data_file,
                 image_folder=str(image_folder), pipeline=list(pipeline),
                 prompt=prompt, **kwargs))


def test_one_sample_per_image(tmp_path):
    dataset = build(write_json(tmp_path / 'coco_karpathy_test.json',
                               RECORDS), 'coco')
    assert isinstance(dataset, COCOKarpathyCaptionDataset)
    assert len(dataset) == 3
    info = dataset.get_data_info(0)
    assert info.pop('sample_idx') == 0
    assert info == dict(
        sample_id=391895, image_id=391895,
        img_path='coco/val2014/COCO_val2014_000000391895.jpg',
        conversations=[{'from': 'human', 'value': '<image>\n' + PROMPT}],
        prompt=PROMPT, gt_captions=RECORDS[0]['caption'])
    assert [dataset.get_data_info(i)['image_id'] for i in range(3)] == [
        391895, 60623, 483108]


@pytest.mark.parametrize('name,image_id', [
    ('val2014/COCO_val2014_000000391895.jpg', 391895),
    ('000000000139.jpg', 139),
    ('COCO_test2014_000000000001.png', 1),
])
def test_coco_image_id(name, image_id):
    assert coco_image_id(name) == image_id


def test_pipeline_makes_a_generation_sample(tmp_path, image_folder,
                                            tokenizer_cfg, tokenizer):
    pipeline = [
        dict(type='LoadImage'),
        dict(type='PadToSquare', mean=CLIP_MEAN),
        dict(type='ProcessImage', image_processor=PROCESSOR_CFG),
        dict(type='TokenizeConversation', tokenizer=tokenizer_cfg,
             template='vicuna_v1', mode='predict'),
        dict(type='PackLLaVAInputs',
             meta_keys=('sample_id', 'image_id', 'prompt', 'gt_captions')),
    ]
    dataset = build(write_json(tmp_path / 'test.json', RECORDS),
                    image_folder, pipeline)
    item = dataset[1]
    input_ids = item['inputs']['input_ids']
    assert (input_ids == IMAGE_TOKEN_INDEX).sum() == 1
    assert item['inputs']['pixel_values'].shape == (1, 3, 32, 32)
    sample = item['data_samples']
    assert (sample.sample_id, sample.image_id) == (60623, 60623)
    assert sample.prompt == PROMPT
    assert sample.gt_captions == RECORDS[1]['caption']
    text = tokenizer.decode([token for token in input_ids.tolist()
                             if token != IMAGE_TOKEN_INDEX])
    assert text.endswith(PROMPT + ' ASSISTANT:')


@pytest.mark.parametrize('bad_record,expected', [
    ('a string', ['record 1', 'expected an object']),
    ({'caption': ['A cat.']}, ['record 1', 'image=None', '"image"']),
    ({'image': 'val2014/COCO_val2014_000000000042.jpg'},
     ['record 1', 'COCO_val2014_000000000042.jpg', '"caption"']),
    ({'image': 'val2014/COCO_val2014_000000000042.jpg', 'caption': [1]},
     ['record 1', '"caption"']),
    ({'image': 'val2014/cat.jpg', 'caption': ['A cat.']},
     ['record 1', "no COCO image id in the file name 'val2014/cat.jpg'"]),
    (RECORDS[0], ['record 1', 'image id 391895 is also record 0']),
])
def test_bad_record_names_file_index_and_fault(bad_record, expected,
                                               tmp_path):
    data_file = write_json(tmp_path / 'bad.json', [RECORDS[0], bad_record])
    with pytest.raises(ValueError) as info:
        build(data_file)
    message = str(info.value)
    assert data_file in message
    for text in expected:
        assert text in message, (text, message)


def test_a_single_caption_string_is_accepted(tmp_path):
    record = dict(RECORDS[2], caption='A man on a bicycle.')
    dataset = build(write_json(tmp_path / 'one.json', [record]))
    assert dataset.get_data_info(0)['gt_captions'] == ['A man on a bicycle.']


def test_prompt_must_be_given(tmp_path):
    with pytest.raises(ValueError, match='prompt must be a non-empty'):
        build(write_json(tmp_path / 'test.json', RECORDS), prompt=' ')
