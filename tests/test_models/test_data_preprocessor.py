"""``mmllava/models/data_preprocessor.py``: a collated list of samples
becomes right-padded model inputs with one flat stack of images."""
import pytest
import torch
from mmpretrain.structures import DataSample

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.registry import MODELS

H = W = 8


@pytest.fixture
def preprocessor():
    return MODELS.build(dict(type='LLaVADataPreprocessor'))


def images(count, value):
    return torch.full((count, 3, H, W), float(value))


def collated(input_ids, labels=None, pixel_values=None, data_samples=None):
    """What mmengine's ``pseudo_collate`` makes of packed samples."""
    inputs = dict(input_ids=[torch.tensor(ids) for ids in input_ids],
                  pixel_values=pixel_values
                  or [torch.empty(0) for _ in input_ids])
    if labels is not None:
        inputs['labels'] = [torch.tensor(sample) for sample in labels]
    return dict(inputs=inputs, data_samples=data_samples)


def test_pads_ids_and_labels_to_the_right(preprocessor):
    batch = preprocessor(collated(
        input_ids=[[1, IMAGE_TOKEN_INDEX, 5, 6], [1, 7], [1, 8, 9, 10, 11]],
        labels=[[-100, -100, 5, 6], [-100, 7], [-100, -100, 9, 10, 11]]))
    assert torch.equal(batch['input_ids'], torch.tensor([
        [1, IMAGE_TOKEN_INDEX, 5, 6, 0],
        [1, 7, 0, 0, 0],
        [1, 8, 9, 10, 11]]))
    assert torch.equal(batch['labels'], torch.tensor([
        [-100, -100, 5, 6, IGNORE_INDEX],
        [-100, 7, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
        [-100, -100, 9, 10, 11]]))
    assert torch.equal(batch['attention_mask'], torch.tensor([
        [1, 1, 1, 1, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1]]))
    assert batch['input_ids'].dtype == torch.long


def test_concatenates_images_in_sample_order(preprocessor):
    pixel_values = [images(2, 1.0), torch.empty(0), images(1, 3.0)]
    batch = preprocessor(collated(
        input_ids=[[1, IMAGE_TOKEN_INDEX, IMAGE_TOKEN_INDEX], [1, 4],
                   [1, IMAGE_TOKEN_INDEX]],
        pixel_values=pixel_values))
    # (sum num_images, 3, H, W): the text-only sample adds nothing.
    assert batch['num_images'] == [2, 0, 1]
    assert batch['pixel_values'].shape == (3, 3, H, W)
    assert batch['pixel_values'].dtype == torch.float32
    assert batch['pixel_values'][:, 0, 0, 0].tolist() == [1.0, 1.0, 3.0]


def test_no_images_and_no_labels_give_none(preprocessor):
    batch = preprocessor(collated(input_ids=[[1, 2], [1, 2, 3]]))
    assert batch['pixel_values'] is None
    assert batch['num_images'] == [0, 0]
    assert batch['labels'] is None
    assert batch['attention_mask'].tolist() == [[1, 1, 0], [1, 1, 1]]


def test_pixel_dtype_casts_images():
    preprocessor = MODELS.build(
        dict(type='LLaVADataPreprocessor', pixel_dtype='bfloat16'))
    batch = preprocessor(collated(input_ids=[[1, IMAGE_TOKEN_INDEX]],
                                  pixel_values=[images(1, 0.5)]))
    assert batch['pixel_values'].dtype == torch.bfloat16
    assert batch['input_ids'].dtype == torch.long


def test_data_samples_pass_through(preprocessor):
    samples = [DataSample(metainfo=dict(sample_id='a')),
               DataSample(metainfo=dict(sample_id='b'))]
    batch = preprocessor(collated(input_ids=[[1], [1, 2]],
                                  data_samples=samples))
    assert [s.sample_id for s in batch['data_samples']] == ['a', 'b']


def test_unknown_key_fails_loudly():
    with pytest.raises(TypeError, match='pad_value'):
        MODELS.build(dict(type='LLaVADataPreprocessor', pad_value=1))
