"""A length-grouped sampler that keeps image and text-only samples apart.

The arrangement is the official LLaVA trainer's ``group_by_modality_length``
(``get_modality_length_grouped_indices`` in ``llava/train/llava_trainer.py``),
made deterministic per epoch and split across ranks the way mmengine samplers
are.
"""
import math
from typing import Iterator, List, Optional, Sequence, Sized

import torch
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from mmllava.registry import DATA_SAMPLERS


def _split_to_even_chunks(indices: List[int], lengths: Sequence[int],
                          num_chunks: int) -> List[List[int]]:
    """Split indices into ``num_chunks`` equal-size chunks of balanced length.

    Greedy, as the official LLaVA code: each index (given long to short) goes
    to the chunk with the smallest total so far; a full chunk takes no more.
    When the indices do not divide evenly they are dealt out in turn instead.

    Args:
        indices (list[int]): Dataset indices, sorted by length, long first.
        lengths (Sequence[int]): Positive length of every dataset index.
        num_chunks (int): How many chunks to make (the world size).

    Returns:
        list[list[int]]: The chunks, in rank order.
    """
    if len(indices) % num_chunks != 0:
        return [indices[i::num_chunks] for i in range(num_chunks)]

    chunk_size = len(indices) // num_chunks
    chunks: List[List[int]] = [[] for _ in range(num_chunks)]
    totals = [0.0] * num_chunks
    for index in indices:
        shortest = totals.index(min(totals))
        chunks[shortest].append(index)
        totals[shortest] += lengths[index]
        if len(chunks[shortest]) == chunk_size:
            totals[shortest] = math.inf
    return chunks


def _length_grouped_steps(indices: List[int], lengths: Sequence[int],
                          step_size: int, megabatch_size: int, world_size: int,
                          generator: torch.Generator) -> List[List[int]]:
    """Shuffle indices, then group them by length into steps.

    Each megabatch of ``megabatch_size`` shuffled indices is sorted long to
    short and cut into steps of ``step_size``; each step is split into
    ``world_size`` balanced chunks, laid out one after another (rank 0 first).

    Args:
        indices (list[int]): The dataset indices to arrange.
        lengths (Sequence[int]): Positive length of every dataset index.
        step_size (int): Indices in one step over all ranks.
        megabatch_size (int): Indices sorted together, a multiple of
            ``step_size``.
        world_size (int): Number of ranks.
        generator (torch.Generator): Source of the shuffle.

    Returns:
        list[list[int]]: The steps in order; only the last may be short.
    """
    order = torch.randperm(len(indices), generator=generator).tolist()
    shuffled = [indices[i] for i in order]
    steps = []
    for start in range(0, len(shuffled), megabatch_size):
        megabatch = sorted(shuffled[start:start + megabatch_size],
                           key=lambda i: lengths[i],
                           reverse=True)
        for step_start in range(0, len(megabatch), step_size):
            step = megabatch[step_start:step_start + step_size]
            chunks = _split_to_even_chunks(step, lengths, world_size)
            steps.append([i for chunk in chunks for i in chunk])
    return steps


def _shuffle(steps: List[List[int]],
             generator: torch.Generator) -> List[List[int]]:
    """Return ``steps`` in a random order drawn from ``generator``."""
    order = torch.randperm(len(steps), generator=generator).tolist()
    return [steps[i] for i in order]


@DATA_SAMPLERS.register_module()
class LengthGroupedSampler(Sampler):
    """Group samples of similar length, never mixing image and text-only.

    The official LLaVA ``group_by_modality_length`` arrangement. The dataset
    gives ``modality_lengths``: ``+length`` for a sample with an image and
    ``-length`` for a text-only one. Each modality is shuffled and cut into
    megabatches of ``world_size * batch_size * mega_batch_mult`` indices; a
    megabatch is sorted long to short and cut into steps of
    ``world_size * batch_size``, and each step is split into ``world_size``
    batches of ``batch_size`` balanced by total length, batch ``r`` going to
    rank ``r``. The steps of both modalities are shuffled together, so long
    batches do not all come first. The last step of each modality joins the
    other's into one leftover megabatch (indices in ascending order, as the
    official code), which comes last, followed by any ``round_up`` padding;
    only there may a batch mix image and text-only samples.

    With ``mega_batch_mult=1`` this is exactly the official arrangement: for
    the same random draws it yields the same global order (the official code
    draws from torch's global generator; this sampler from its own, seeded
    with ``seed + epoch``, so every rank builds the same order). There a
    megabatch is one step, so length grouping only balances the ranks of a
    step: on one GPU it groups nothing by length, and batches of similar
    length need ``mega_batch_mult > 1``, which sorts a pool that many steps
    large before cutting it into steps (a larger pool groups more tightly and
    shuffles less).

    Unlike the official code, which sorts the negative lengths of a dataset
    with no image sample as they are (short first, unbalanced ranks), the
    sign only marks the modality here: lengths are compared by magnitude.

    The sampler yields this rank's indices batch after batch, so the data
    loader's ``batch_size`` must equal ``batch_size`` here.

    Args:
        dataset (Sized): The dataset; it must have ``modality_lengths``, one
            non-zero int per sample (``+length`` with an image, ``-length``
            text-only).
        batch_size (int): Samples per batch on one rank; the same value as
            the data loader's ``batch_size``.
        mega_batch_mult (int): How many steps of
            ``world_size * batch_size`` indices are sorted by length
            together. 1 is the official arrangement. Defaults to 1.
        group_by_modality (bool): Keep image and text-only samples in
            separate batches. If False, all samples are grouped by length
            alone as one pool. Defaults to True.
        seed (int, optional): Seed of the shuffle, the same on every rank.
            If None, a random seed is drawn and synced across ranks.
            Defaults to None.
        round_up (bool): Pad the order by wrapping around to a whole number
            of steps, so that every rank gets the same number of full
            batches. If False, no sample is added and the last batch may be
            short or missing on some ranks. Defaults to True.
    """

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 mega_batch_mult: int = 1,
                 group_by_modality: bool = True,
                 seed: Optional[int] = None,
                 round_up: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        if mega_batch_mult < 1:
            raise ValueError(
                f'mega_batch_mult must be >= 1, got {mega_batch_mult}')
        if not hasattr(dataset, 'modality_lengths'):
            raise TypeError(
                'LengthGroupedSampler needs a dataset with '
                '`modality_lengths` (+length for a sample with an image, '
                f'-length for a text-only one); {type(dataset).__name__} '
                'has none')
        modality_lengths = [int(length) for length in dataset.modality_lengths]
        if len(modality_lengths) != len(dataset):
            raise ValueError(f'The dataset has {len(dataset)} samples but '
                             f'{len(modality_lengths)} modality_lengths')
        for index, length in enumerate(modality_lengths):
            if length == 0:
                raise ValueError(
                    f'modality_lengths[{index}] is 0; every sample needs a '
                    'non-zero length (+ with an image, - text-only)')

        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.batch_size = batch_size
        self.mega_batch_mult = mega_batch_mult
        self.group_by_modality = group_by_modality
        self.seed = sync_random_seed() if seed is None else seed
        self.round_up = round_up
        self.epoch = 0
        self.modality_lengths = modality_lengths
        self.lengths = [abs(length) for length in modality_lengths]

        num_indices = len(modality_lengths)
        step_size = self.world_size * batch_size
        if round_up:
            self.total_size = math.ceil(num_indices / step_size) * step_size
            self.num_samples = self.total_size // self.world_size
        else:
            self.total_size = num_indices
            full_steps, rest = divmod(num_indices, step_size)
            self.num_samples = full_steps * batch_size + min(
                max(rest - self.rank * batch_size, 0), batch_size)

    def _global_order(self, generator: torch.Generator) -> List[int]:
        """The order of all indices over all ranks, one step after another."""
        step_size = self.world_size * self.batch_size
        megabatch_size = step_size * self.mega_batch_mult
        image = [i for i, n in enumerate(self.modality_lengths) if n > 0]
        text = [i for i, n in enumerate(self.modality_lengths) if n < 0]

        if not self.group_by_modality or not image or not text:
            steps = _length_grouped_steps(list(range(len(self.lengths))),
                                          self.lengths, step_size,
                                          megabatch_size, self.world_size,
                                          generator)
            # With one step per megabatch the steps already come in random
            # order (and the official code draws nothing more); with several,
            # a megabatch's steps run long to short.
            if self.mega_batch_mult > 1:
                steps = _shuffle(steps, generator)
            return [i for step in steps for i in step]

        image_steps = _length_grouped_steps(image, self.lengths, step_size,
                                            megabatch_size, self.world_size,
                                            generator)
        text_steps = _length_grouped_steps(text, self.lengths, step_size,
                                           megabatch_size, self.world_size,
                                           generator)
        steps = _shuffle(image_steps[:-1] + text_steps[:-1], generator)
        leftover = sorted(image_steps[-1] + text_steps[-1])
        return [i for step in steps for i in step] + leftover

    def __iter__(self) -> Iterator[int]:
        """Iterate this rank's indices, one batch after another."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        indices = self._global_order(generator)

        if self.round_up and len(indices) < self.total_size:
            repeats = math.ceil(self.total_size / len(indices))
            indices = (indices * repeats)[:self.total_size]

        # Batch k of the global order goes to rank k % world_size, so rank r
        # gets chunk r of every step.
        step_size = self.world_size * self.batch_size
        rank_indices = []
        for start in range(self.rank * self.batch_size, len(indices),
                           step_size):
            rank_indices += indices[start:start + self.batch_size]
        return iter(rank_indices)

    def __len__(self) -> int:
        """The number of samples in this rank."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which changes the order (the same on every rank).

        Args:
            epoch (int): Epoch number.
        """
        self.epoch = epoch
