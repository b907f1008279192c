"""Seeded random training samples and generation prompts: ids drawn from the
tokenizer's vocabulary, random images. The weights are random too, so the
text needs no meaning; what matters is LLaVA's layout (BOS, an image
placeholder, an unsupervised prompt, a supervised answer) and a spread of
lengths like the 665K mix's."""
import math
from dataclasses import replace

import torch

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX

from benchmark_parts.batches import Sample
from benchmark_parts.sizes import Sizes

#: Ids drawn for text: past BOS/EOS/UNK, inside the tokenizer's 32000.
FIRST_ID, END_ID = 3, 32000
BOS_ID = 1


def random_samples(sizes: Sizes, count: int, seed: int) -> list[Sample]:
    """``count`` samples: text lengths log-uniform over
    ``sizes.conversation_tokens``, a share ``sizes.fractions[2]`` text-only,
    the rest with one image first; the first third of the text is the
    (unsupervised) prompt."""
    generator = torch.Generator().manual_seed(seed)
    low, high = (math.log(n) for n in sizes.conversation_tokens)
    side = sizes.vision['image_size']
    samples = []
    for index in range(count):
        uniform = torch.rand(2, generator=generator).tolist()
        length = int(math.exp(low + (high - low) * uniform[0]))
        with_image = uniform[1] >= sizes.fractions[2]
        text = torch.randint(FIRST_ID, END_ID, (length, ),
                             generator=generator)
        head = torch.tensor([BOS_ID] + [IMAGE_TOKEN_INDEX] * with_image)
        input_ids = torch.cat([head, text])
        labels = input_ids.clone()
        labels[:len(head) + max(1, length // 3)] = IGNORE_INDEX
        pixel_values = torch.randn(int(with_image), 3, side, side,
                                   generator=generator)
        samples.append(Sample(f'sample-{index}', input_ids, labels,
                              pixel_values, length))
    return samples


def prompts(sizes: Sizes, count: int, seed: int) -> list[Sample]:
    """``count`` generation prompts, each an image and 8-24 text ids, all
    unsupervised."""
    samples = random_samples(
        replace(sizes, conversation_tokens=(8, 24),
                fractions=(0.0, 1.0, 0.0)), count, seed)
    return [Sample(s.sample_id, s.input_ids,
                   torch.full_like(s.input_ids, IGNORE_INDEX), s.pixel_values,
                   s.modality_length) for s in samples]


def steps_of(samples: list[Sample], batch_size: int) -> list[list[Sample]]:
    """Consecutive batches of ``batch_size`` samples."""
    return [samples[start:start + batch_size]
            for start in range(0, len(samples), batch_size)]
