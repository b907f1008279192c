"""Several images in one sample (LLaVA-NeXT-Interleave's format), with
transformers as the judge: the tiny LLaVA-1.5 and AnyRes models of
``test_llava_hf.py`` and ``test_llava_next_hf.py``, exported to llava-hf
folders and loaded by ``LlavaForConditionalGeneration`` /
``LlavaNextForConditionalGeneration.from_pretrained``, must give our logits
for a batch of two samples, one about two photos and one about one. The
pixels of the reference come from the folder's own image processor, each
image on its own; our side runs the config's test pipeline on the image
lists."""
import pytest
import torch
from mmengine.dataset import pseudo_collate
from PIL import Image
from skimage import data as photos
from transformers import (AutoProcessor, LlavaForConditionalGeneration,
                          LlavaNextForConditionalGeneration)

from mmllava.apis.generation import build_test_pipeline
from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.converters.llava_hf import export_model

pytestmark = pytest.mark.usefixtures('one_thread')

#: The size of the tokenizer's own vocabulary; the export adds <image> and
#: <pad> after it.
VOCAB = 32000
#: A two-image question with its images in place, and a one-image one.
PROMPTS = ['Image 1: <image>\nImage 2: <image>\nWhat differs between them?',
           '<image>\nWhat is in the picture?']


def photo(name, box=None):
    image = Image.fromarray(getattr(photos, name)()).convert('RGB')
    return image.crop(box) if box else image


def our_logits(model, samples):
    """Our logits for ``samples`` (per sample, its list of images) with
    :data:`PROMPTS`, in one batch, and the batch."""
    pipeline = build_test_pipeline(model)
    batch = model.data_preprocessor(pseudo_collate([
        pipeline(dict(sample_id=index, img=images, conversations=[
            {'from': 'human', 'value': prompt}]))
        for index, (images, prompt) in enumerate(zip(samples, PROMPTS))]))
    assert batch['num_images'] == [len(images) for images in samples]
    with torch.no_grad():
        return model(**batch, mode='tensor'), batch


def expanded_ids(batch, index, counts, image_token):
    """Sample ``index``'s prompt ids with image ``i``'s placeholder written
    as ``counts[i]`` llava-hf image tokens."""
    ids = batch['input_ids'][index][batch['attention_mask'][index].bool()]
    counts = iter(counts)
    out = []
    for value in ids.tolist():
        out += [image_token] * next(counts) if value == IMAGE_TOKEN_INDEX \
            else [value]
    return torch.tensor([out])


def max_logit_diff(model, reference, processor, samples, counts_of):
    """The largest difference of our batched logits from transformers',
    each sample run alone there; the images really differ per sample."""
    logits, batch = our_logits(model, samples)
    image_token = reference.config.image_token_id
    diffs = []
    for index, images in enumerate(samples):
        pixels = processor.image_processor(images, return_tensors='pt')
        counts = [counts_of(image) for image in images]
        inputs = expanded_ids(batch, index, counts, image_token)
        assert int((inputs == image_token).sum()) == sum(counts)
        with torch.no_grad():
            expected = reference(input_ids=inputs, **pixels).logits[0]
        diffs.append(float((logits[index, :len(expected)]
                            - expected[:, :VOCAB]).abs().max()))
    return max(diffs), logits


@pytest.fixture(scope='module')
def llava(llava_tests, tokenizer_folder, tmp_path_factory, load_export):
    """The LLaVA-1.5 model (pad), its export as transformers loads it, and
    the export's processor."""
    model = llava_tests.build_model(tokenizer_folder)
    folder = tmp_path_factory.mktemp('multi_image_llava')
    export_model(model, str(folder), tokenizer_dir=tokenizer_folder)
    return (model, load_export(LlavaForConditionalGeneration, folder),
            AutoProcessor.from_pretrained(folder))


def test_pad_logits_match_transformers_llava(llava):
    model, reference, processor = llava
    samples = [[photo('astronaut'), photo('coffee')], [photo('chelsea')]]
    diff, logits = max_logit_diff(
        model, reference, processor, samples,
        lambda image: model.image_token_count())
    assert diff <= 1e-5, diff
    # The second image matters: swapping the pair changes the answer's
    # logits.
    swapped, _ = our_logits(model, [samples[0][::-1], samples[1]])
    assert not torch.allclose(swapped[0], logits[0], atol=1e-3)


def test_anyres_logits_match_transformers_llava_next(
        llava_next_model, llava_next_export, load_export):
    model = llava_next_model
    reference = load_export(LlavaNextForConditionalGeneration,
                            llava_next_export)
    processor = AutoProcessor.from_pretrained(llava_next_export)
    # 400x600 and a 100x640 strip: grids 2x2 and 1x3, different counts.
    samples = [[photo('coffee'), photo('rocket', (0, 150, 640, 250))],
               [photo('chelsea')]]

    def count(image):
        return model.image_token_count((image.height, image.width))

    assert count(samples[0][0]) != count(samples[0][1])
    diff, _ = max_logit_diff(model, reference, processor, samples, count)
    assert diff <= 1e-5, diff
