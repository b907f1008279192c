"""Several images per sample (LLaVA-NeXT-Interleave's format): a data file
whose records list their images, each image tiled on its own grid (AnyRes)
with its own token count, truncation that keeps images whole, a training
loss, and questions about several images through ``inference_model`` and
``ChatSession``.

Runs offline in seconds (photos from scikit-image, the LLaMA tokenizer from
the mistral-common wheel, random weights):

    python examples/multi_image.py [--out work_dirs/multi_image]

The answers are noise from random weights; what the example shows is the
data path and the API (see docs/data.md and docs/inference.md, "Several
images per sample").
"""
import argparse
import json
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from PIL import Image
from skimage import data as photos

# The tiny AnyRes model of the example beside this one (28-px tiles).
from anyres_demo import PATCH, PINPOINTS, TILE, model_config, write_weights
from mmllava.apis import ChatSession, get_model, inference_model
from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.datasets import LLaVADataset

#: Room for 240 LLM rows: the three-image record (272) loses its last
#: image and what follows it; the others fit.
MAX_LENGTH = 240

#: LLaVA-NeXT-Interleave records: ``image`` a list, one ``<image>`` per
#: image, in any human turn; several in one turn stay where they stand.
RECORDS = [
    dict(id='pair', image=['coffee.png', 'chelsea.png'], conversations=[
        {'from': 'human',
         'value': 'Image 1: <image>\nImage 2: <image>\nWhat differs?'},
        {'from': 'gpt', 'value': 'The first is a cup of coffee, the second '
         'a cat.'}]),
    dict(id='three_turns', image=['astronaut.png', 'rocket.png',
                                  'strip.png'],
         conversations=[
             {'from': 'human', 'value': 'Who is this? <image>'},
             {'from': 'gpt', 'value': 'An astronaut.'},
             {'from': 'human', 'value': 'And <image> then <image>?'},
             {'from': 'gpt', 'value': 'A rocket, then a strip of it.'}]),
    dict(id='single', image='chelsea.png', conversations=[
        {'from': 'human', 'value': '<image>\nWhat animal is this?'},
        {'from': 'gpt', 'value': 'A cat.'}]),
]


def write_files(out: Path) -> None:
    """Random weights, the tokenizer, the photos and the data file."""
    write_weights(out)
    images = out / 'images'
    images.mkdir(parents=True, exist_ok=True)
    for name in ('coffee', 'chelsea', 'astronaut', 'rocket'):
        Image.fromarray(getattr(photos, name)()).convert('RGB').save(
            images / f'{name}.png')
    Image.open(images / 'rocket.png').crop((0, 150, 640, 250)).save(
        images / 'strip.png')
    (out / 'data.json').write_text(json.dumps(RECORDS, indent=1))


def config(out: Path) -> Config:
    """The AnyRes example's model and test pipeline, and a training
    pipeline that truncates to :data:`MAX_LENGTH`."""
    cfg = model_config(out)
    tokenize = dict(cfg.test_pipeline[2], mode='train',
                    max_length=MAX_LENGTH, num_image_tokens=dict(
                        grid_pinpoints=PINPOINTS, tile_size=TILE,
                        patch_size=PATCH, merge_type='spatial_unpad'))
    cfg.train_pipeline = [*cfg.test_pipeline[:2], tokenize,
                          dict(type='PackLLaVAInputs')]
    return cfg


def show_training_data(model, cfg: Config, out: Path) -> None:
    """Each record as training sees it, then one loss over the batch."""
    dataset = LLaVADataset(str(out / 'data.json'), str(out / 'images'),
                           cfg.train_pipeline)
    samples = [dataset[index] for index in range(len(dataset))]
    print(f'{"record":<12} {"images":>6} {"rows per image":<16} '
          f'{"ids":>4} {"LLM rows":>8}')
    for sample in samples:
        inputs = sample['inputs']
        rows = [model.image_token_count(tuple(size.tolist()))
                for size in inputs['image_sizes']]
        ids = inputs['input_ids']
        assert int((ids == IMAGE_TOKEN_INDEX).sum()) == len(rows)
        print(f'{sample["data_samples"].sample_id:<12} {len(rows):>6} '
              f'{str(rows):<16} {len(ids):>4} '
              f'{len(ids) - len(rows) + sum(rows):>8}')
    batch = model.data_preprocessor(pseudo_collate(samples))
    with torch.no_grad():
        loss = model(**batch, mode='loss')['loss']
    print(f'num_images per sample: {batch["num_images"]}; loss of the '
          f'batch: {loss.item():.3f}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/multi_image')
    out = Path(parser.parse_args().out)
    write_files(out)
    cfg = config(out)
    model = get_model(cfg, device='cpu')
    show_training_data(model, cfg, out)

    images = out / 'images'
    coffee, cat, astronaut = (str(images / f'{name}.png')
                              for name in ('coffee', 'chelsea', 'astronaut'))
    # A batch: one sample about two images, placed by the prompt, and one
    # about one image.
    answers = inference_model(
        model, [[coffee, cat], astronaut],
        ['Is <image> brighter than <image>?', 'Who is this?'])
    alone = inference_model(model, (coffee, cat),
                            'Is <image> brighter than <image>?')
    print(f'two images: {answers[0]["pred_answer"]!r} (same alone: '
          f'{answers[0] == alone}); one image: '
          f'{answers[1]["pred_answer"]!r}')

    session = ChatSession(model, [coffee, cat])
    print('chat:', repr(session.ask('What differs?')))
    session.add_image(astronaut)
    print('chat, one image more:', repr(session.ask('And this one?')))
    print('history:', [turn['value'] for turn in session.history[::2]])


if __name__ == '__main__':
    main()
