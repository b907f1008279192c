"""A seeded LLaVA-like training set on disk: photos and two json files.

Captions (stage-1 style, the ``plain`` template) and conversations (the
``vicuna_v1`` template, some without an image) in the LLaVA json format, with
real photos from ``skimage.data`` resized to COCO-like sizes and saved as
JPEG, so that the data path reads, decodes and pads real files.
"""
import json
import math
import random
from pathlib import Path

from PIL import Image
from skimage import data as photos

from benchmark_parts.sizes import Sizes

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field',
          'immunohistochemistry', 'retina', 'camera', 'coins')
#: Width x height of COCO-like images (landscape, portrait, square).
IMAGE_SIZES = ((640, 480), (640, 427), (500, 375), (480, 640), (427, 640),
               (512, 512))
CAPTION_FILE, CONVERSATION_FILE = 'captions.json', 'conversations.json'


def word_pieces(tokenizer) -> list[str]:
    """Whole words of the tokenizer's vocabulary: each is one token after a
    space, so a text of ``n`` of them is about ``n`` tokens long."""
    words = [piece[1:] for piece in tokenizer.get_vocab()
             if piece.startswith('\u2581') and piece[1:].isalpha()
             and piece[1:].isascii() and len(piece) > 3]
    return sorted(words)


def sentence(rng: random.Random, words: list[str], length: int) -> str:
    return ' '.join(rng.choice(words) for _ in range(max(length, 1))) + '.'


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    """Skewed to short lengths, as in LLaVA's instruction mix."""
    return int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))


def write_image(rng: random.Random, path: Path) -> None:
    photo = Image.fromarray(getattr(photos, rng.choice(PHOTOS))())
    photo.convert('RGB').resize(rng.choice(IMAGE_SIZES)).save(
        path, quality=90)


def conversation(rng: random.Random, words: list[str], total: int,
                 has_image: bool) -> list[dict]:
    """1-4 rounds whose text adds up to about ``total`` tokens; questions
    take a sixth of each round."""
    rounds = min(rng.randint(1, 4), max(total // 25, 1))
    turns = []
    for index in range(rounds):
        budget = total // rounds
        question = sentence(rng, words, max(budget // 6, 4))
        if index == 0 and has_image:
            question = '<image>\n' + question if rng.random() < 0.7 \
                else question + '\n<image>'
        turns += [dict(value=question), dict(
            value=sentence(rng, words, budget - budget // 6))]
    for index, turn in enumerate(turns):
        turn['from'] = 'human' if index % 2 == 0 else 'gpt'
    return turns


def write_dataset(root: str, sizes: Sizes, tokenizer,
                  seed: int = 0) -> dict[str, str]:
    """Write ``sizes.num_samples`` records under ``root``.

    Returns:
        dict: ``captions`` and ``conversations`` json paths and
        ``image_folder``.
    """
    rng = random.Random(seed)
    words = word_pieces(tokenizer)
    folder = Path(root)
    (folder / 'images').mkdir(parents=True, exist_ok=True)
    num_captions = round(sizes.num_samples * sizes.fractions[0])
    num_text = round(sizes.num_samples * sizes.fractions[2])
    captions, conversations = [], []
    for index in range(sizes.num_samples):
        image = f'images/{index:05d}.jpg'
        if index < num_captions:
            write_image(rng, folder / image)
            captions.append(dict(id=f'caption-{index}', image=image,
                                 conversations=[
                dict(**{'from': 'human'}, value='<image>\nDescribe it.'),
                dict(**{'from': 'gpt'}, value=sentence(
                    rng, words, rng.randint(*sizes.caption_tokens)))]))
            continue
        has_image = index >= num_captions + num_text
        record = dict(id=f'chat-{index}', conversations=conversation(
            rng, words, log_uniform(rng, *sizes.conversation_tokens),
            has_image))
        if has_image:
            write_image(rng, folder / image)
            record['image'] = image
        conversations.append(record)
    paths = dict(captions=str(folder / CAPTION_FILE),
                 conversations=str(folder / CONVERSATION_FILE),
                 image_folder=str(folder))
    Path(paths['captions']).write_text(json.dumps(captions))
    Path(paths['conversations']).write_text(json.dumps(conversations))
    return paths
