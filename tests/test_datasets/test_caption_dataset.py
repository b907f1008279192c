"""``mmllava/datasets/caption_dataset.py``: captions of any naming (LLaVA
caption records, image + caption records, a folder with a captions file)
as a caption test set, the references built in memory; faults named."""
import json

import pytest
from PIL import Image

from mmllava.datasets.caption_dataset import CaptionDataset

PROMPT = 'Provide a one-sentence caption for the provided image.'


def images(folder, names):
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (8, 8)).save(folder / name)


def test_llava_caption_records_with_any_file_names(tmp_path):
    images(tmp_path, ['grass.png', 'sub/sky.jpg'])
    records = [
        dict(id='a', image='grass.png', conversations=[
            dict(value='<image>\nDescribe.', **{'from': 'human'}),
            dict(value=' Green grass. ', **{'from': 'gpt'})]),
        dict(id='b', image='sub/sky.jpg', conversations=[
            dict(value='<image>\nCaption?', **{'from': 'human'}),
            dict(value='A blue sky.', **{'from': 'gpt'})]),
        # A second record of the same image: one more reference.
        dict(id='c', image='grass.png', conversations=[
            dict(value='<image>\nDescribe.', **{'from': 'human'}),
            dict(value='A lawn.', **{'from': 'gpt'})]),
    ]
    path = tmp_path / 'mine.json'
    path.write_text(json.dumps(records))
    dataset = CaptionDataset(str(path), prompt=PROMPT)
    assert len(dataset) == 2
    first, second = dataset.get_data_info(0), dataset.get_data_info(1)
    assert (first['image_id'], first['image'], first['gt_captions']) == \
        (0, 'grass.png', ['Green grass.', 'A lawn.'])
    assert first['img_path'] == str(tmp_path / 'grass.png')
    assert first['conversations'] == [
        {'from': 'human', 'value': f'<image>\n{PROMPT}'}]
    assert (second['image_id'], second['gt_captions']) == (1, ['A blue sky.'])


def test_folder_with_a_captions_file(tmp_path):
    images(tmp_path, ['1.png', '2.png', '3.png'])
    (tmp_path / 'metadata.jsonl').write_text(
        json.dumps(dict(file_name='1.png', text='one')) + '\n'
        + json.dumps(dict(file_name='2.png', text='two')) + '\n'
        + json.dumps(dict(file_name='3.png', text='three')) + '\n')
    dataset = CaptionDataset(str(tmp_path), prompt=PROMPT, max_images=2)
    assert [dataset.get_data_info(i)['gt_captions'] for i in range(2)] == \
        [['one'], ['two']]
    assert len(dataset) == 2


@pytest.mark.parametrize('records, match', [
    ([dict(image='a.png', conversations=[
        {'from': 'human', 'value': 'Q'}, {'from': 'gpt', 'value': 'A'},
        {'from': 'human', 'value': 'Q'}, {'from': 'gpt', 'value': 'B'}])],
     r"record 0: image 'a.png': a caption record has exactly one \"gpt\" "
     'turn .* has 2'),
    ([dict(caption='x')], 'record 0: no image'),
    ([dict(image='a.png', caption='')], "record 0: image 'a.png': no "
     'caption'),
    ([dict(image='missing.png', caption='x')],
     "1 of 1 images are not under .* e.g. 'missing.png'"),
])
def test_faults_are_named(tmp_path, records, match):
    images(tmp_path, ['a.png'])
    path = tmp_path / 'c.json'
    path.write_text(json.dumps(records))
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        CaptionDataset(str(path), prompt=PROMPT)


def test_folder_without_captions_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='without a captions file'):
        CaptionDataset(str(tmp_path), prompt=PROMPT)
