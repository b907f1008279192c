"""LLaVAInputs: the data preprocessor's dict as one structure."""
import torch

from mmllava.models.model_inputs import LLaVAInputs


def test_from_batch_takes_the_inputs_and_counts_no_images_as_zeros():
    ids = torch.ones(3, 5, dtype=torch.long)
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                 labels=ids.clone(), data_samples=['a', 'b', 'c'])
    inputs = LLaVAInputs.from_batch(batch)
    assert inputs.input_ids is ids and inputs.labels is batch['labels']
    assert inputs.num_images == [0, 0, 0]
    assert inputs.pixel_values is None and inputs.image_sizes is None
    assert inputs.data_samples == ['a', 'b', 'c']


def test_without_labels_keeps_the_rest():
    ids = torch.ones(2, 4, dtype=torch.long)
    pixels = torch.zeros(1, 3, 8, 8)
    inputs = LLaVAInputs(ids, torch.ones_like(ids), labels=ids,
                         pixel_values=pixels, num_images=[1, 0])
    bare = inputs.without_labels()
    assert bare.labels is None and inputs.labels is ids
    assert bare.pixel_values is pixels and bare.num_images == [1, 0]
