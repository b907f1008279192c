import random
from typing import List

import pytest
import torch
from torch.utils.data import DataLoader

from mmllava.datasets import samplers
from mmllava.datasets.samplers import LengthGroupedSampler
from mmllava.registry import DATA_SAMPLERS


# The official LLaVA arrangement (llava/train/llava_trainer.py), written out
# independently of mmllava to compare against; only names are changed.
def official_split_to_even_chunks(indices, lengths, num_chunks):
    if len(indices) % num_chunks != 0:
        return [indices[i::num_chunks] for i in range(num_chunks)]

    num_indices_per_chunk = len(indices) // num_chunks

    chunks = [[] for _ in range(num_chunks)]
    chunks_lengths = [0 for _ in range(num_chunks)]
    for index in indices:
        shortest_chunk = chunks_lengths.index(min(chunks_lengths))
        chunks[shortest_chunk].append(index)
        chunks_lengths[shortest_chunk] += lengths[index]
        if len(chunks[shortest_chunk]) == num_indices_per_chunk:
            chunks_lengths[shortest_chunk] = float('inf')

    return chunks


def official_get_modality_length_grouped_indices(lengths,
                                                 batch_size,
                                                 world_size,
                                                 generator=None):
    assert all(n != 0 for n in lengths), 'Should not have zero length.'
    if all(n > 0 for n in lengths) or all(n < 0 for n in lengths):
        return official_get_length_grouped_indices(lengths,
                                                   batch_size,
                                                   world_size,
                                                   generator=generator)
    mm_indices, mm_lengths = zip(*[(i, n) for i, n in enumerate(lengths)
                                   if n > 0])
    lang_indices, lang_lengths = zip(*[(i, -n) for i, n in enumerate(lengths)
                                       if n < 0])

    mm_shuffle = [
        mm_indices[i] for i in official_get_length_grouped_indices(
            mm_lengths, batch_size, world_size, generator=None)
    ]
    lang_shuffle = [
        lang_indices[i] for i in official_get_length_grouped_indices(
            lang_lengths, batch_size, world_size, generator=None)
    ]
    megabatch_size = world_size * batch_size
    mm_megabatches = [
        mm_shuffle[i:i + megabatch_size]
        for i in range(0, len(mm_shuffle), megabatch_size)
    ]
    lang_megabatches = [
        lang_shuffle[i:i + megabatch_size]
        for i in range(0, len(lang_shuffle), megabatch_size)
    ]

    last_mm = mm_megabatches[-1]
    last_lang = lang_megabatches[-1]
    additional_batch = last_mm + last_lang
    megabatches = mm_megabatches[:-1] + lang_megabatches[:-1]
    megabatch_indices = torch.randperm(len(megabatches), generator=generator)
    megabatches = [megabatches[i] for i in megabatch_indices]

    if len(additional_batch) > 0:
        megabatches.append(sorted(additional_batch))

    return [i for megabatch in megabatches for i in megabatch]


def official_get_length_grouped_indices(lengths,
                                        batch_size,
                                        world_size,
                                        generator=None):
    indices = torch.randperm(len(lengths), generator=generator)
    megabatch_size = world_size * batch_size
    megabatches = [
        indices[i:i + megabatch_size].tolist()
        for i in range(0, len(lengths), megabatch_size)
    ]
    megabatches = [
        sorted(megabatch, key=lambda i: lengths[i], reverse=True)
        for megabatch in megabatches
    ]
    megabatches = [
        official_split_to_even_chunks(megabatch, lengths, world_size)
        for megabatch in megabatches
    ]

    return [
        i for megabatch in megabatches for batch in megabatch for i in batch
    ]


class FakeDataset:
    """A dataset of indices with the given ``modality_lengths``."""

    def __init__(self, modality_lengths: List[int]) -> None:
        self.modality_lengths = modality_lengths

    def __len__(self) -> int:
        return len(self.modality_lengths)

    def __getitem__(self, index: int) -> int:
        return index


def make_lengths(num_image: int, num_text: int, seed: int = 0) -> List[int]:
    """Random lengths, + for image samples, - for text-only, interleaved."""
    rng = random.Random(seed)
    lengths = ([rng.randint(1, 2000) for _ in range(num_image)] +
               [-rng.randint(1, 2000) for _ in range(num_text)])
    rng.shuffle(lengths)
    return lengths


def build(monkeypatch, lengths, rank=0, world_size=1, **kwargs):
    monkeypatch.setattr(samplers, 'get_dist_info', lambda: (rank, world_size))
    kwargs.setdefault('seed', 0)
    return LengthGroupedSampler(FakeDataset(lengths), **kwargs)


def rank_lists(monkeypatch, lengths, world_size, **kwargs):
    return [
        list(build(monkeypatch, lengths, rank, world_size, **kwargs))
        for rank in range(world_size)
    ]


def to_batches(indices: List[int], batch_size: int) -> List[List[int]]:
    return [
        indices[i:i + batch_size] for i in range(0, len(indices), batch_size)
    ]


def global_order(per_rank: List[List[int]], batch_size: int) -> List[int]:
    """Undo the split: global batch k is batch k // W of rank k % W."""
    batches = [to_batches(indices, batch_size) for indices in per_rank]
    order = []
    for k in range(max(len(b) for b in batches)):
        for rank_batches in batches:
            if k < len(rank_batches):
                order += rank_batches[k]
    return order


def is_mixed(batch: List[int], lengths: List[int]) -> bool:
    return len({lengths[i] > 0 for i in batch}) == 2


def mean_spread(batches: List[List[int]], lengths: List[int]) -> float:
    return sum(
        max(abs(lengths[i]) for i in b) - min(abs(lengths[i]) for i in b)
        for b in batches) / len(batches)


def padding_fraction(batches: List[List[int]], lengths: List[int]) -> float:
    padded = sum(len(b) * max(abs(lengths[i]) for i in b) for b in batches)
    real = sum(abs(lengths[i]) for b in batches for i in b)
    return (padded - real) / padded


def test_every_index_once(monkeypatch):
    lengths = make_lengths(96, 64)
    sampler = build(monkeypatch, lengths, batch_size=8)
    indices = list(sampler)
    assert len(sampler) == len(indices) == 160
    assert sorted(indices) == list(range(160))


@pytest.mark.parametrize('world_size', [1, 3])
def test_round_up_pads_whole_batches(monkeypatch, world_size):
    lengths = make_lengths(101, 46)
    batch_size = 4
    per_rank = rank_lists(monkeypatch,
                          lengths,
                          world_size,
                          batch_size=batch_size)
    step_size = world_size * batch_size
    total = -(-len(lengths) // step_size) * step_size
    for indices in per_rank:
        assert len(indices) == total // world_size
        assert all(
            len(b) == batch_size for b in to_batches(indices, batch_size))
    everything = [i for indices in per_rank for i in indices]
    assert set(everything) == set(range(len(lengths)))
    assert len(everything) - len(set(everything)) == total - len(lengths)


@pytest.mark.parametrize('world_size', [1, 4])
@pytest.mark.parametrize('num_image,num_text', [(301, 157), (41, 22)])
def test_batches_do_not_mix_modalities(monkeypatch, world_size, num_image,
                                       num_text):
    lengths = make_lengths(num_image, num_text)
    batch_size = 4
    step_size = world_size * batch_size
    leftover = (num_image - 1) % step_size + (num_text - 1) % step_size + 2
    leftover_batches = -(-leftover // step_size)
    for indices in rank_lists(monkeypatch,
                              lengths,
                              world_size,
                              batch_size=batch_size):
        batches = to_batches(indices, batch_size)
        mixed = [k for k, b in enumerate(batches) if is_mixed(b, lengths)]
        # Only the final leftover megabatch (and its padding) may mix: at
        # most one batch per rank when it fits in one step, else two.
        assert all(k >= len(batches) - leftover_batches for k in mixed)
        assert len(mixed) <= leftover_batches <= 2


@pytest.mark.parametrize('round_up', [True, False])
def test_ranks_are_disjoint_and_cover(monkeypatch, round_up):
    lengths = make_lengths(203, 98)
    per_rank = rank_lists(monkeypatch,
                          lengths,
                          4,
                          batch_size=4,
                          round_up=round_up)
    for rank, indices in enumerate(per_rank):
        assert len(indices) == len(
            build(monkeypatch,
                  lengths,
                  rank,
                  4,
                  batch_size=4,
                  round_up=round_up))
    everything = [i for indices in per_rank for i in indices]
    assert set(everything) == set(range(len(lengths)))
    if not round_up:
        assert len(everything) == len(lengths)


def test_ranks_get_balanced_batches(monkeypatch):
    lengths = make_lengths(512, 0)
    world_size, batch_size = 4, 4
    per_rank = rank_lists(monkeypatch,
                          lengths,
                          world_size,
                          batch_size=batch_size)
    totals = [[
        sum(lengths[i] for i in b) for b in to_batches(indices, batch_size)
    ] for indices in per_rank]
    balanced = [max(step) - min(step) for step in zip(*totals)]

    order = torch.randperm(
        len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    random_totals = [
        sum(lengths[i] for i in b) for b in to_batches(order, batch_size)
    ]
    unbalanced = [
        max(random_totals[k:k + world_size]) -
        min(random_totals[k:k + world_size])
        for k in range(0, len(random_totals), world_size)
    ]
    assert sum(balanced) < 0.5 * sum(unbalanced)


def test_same_seed_and_epoch_same_order(monkeypatch):
    lengths = make_lengths(150, 80)
    first = build(monkeypatch, lengths, batch_size=4, seed=3)
    second = build(monkeypatch, lengths, batch_size=4, seed=3)
    assert list(first) == list(second)
    first.set_epoch(1)
    second.set_epoch(1)
    assert list(first) == list(second)
    other_epoch = list(first)
    first.set_epoch(0)
    assert list(first) != other_epoch
    assert list(first) != list(
        build(monkeypatch, lengths, batch_size=4, seed=4))


def test_seed_none_uses_synced_seed(monkeypatch):
    monkeypatch.setattr(samplers, 'sync_random_seed', lambda: 1234)
    sampler = build(monkeypatch, make_lengths(10, 5), batch_size=2, seed=None)
    assert sampler.seed == 1234


@pytest.mark.parametrize('num_text', [0, 700])
def test_mega_batch_mult_groups_lengths(monkeypatch, num_text):
    lengths = make_lengths(2048 - num_text, num_text)
    batch_size = 8
    grouped = to_batches(
        list(
            build(monkeypatch,
                  lengths,
                  batch_size=batch_size,
                  mega_batch_mult=16)), batch_size)
    # On one rank the official arrangement (mult 1) batches at random.
    plain = to_batches(
        list(build(monkeypatch, lengths, batch_size=batch_size)), batch_size)
    assert mean_spread(grouped, lengths) < 0.5 * mean_spread(plain, lengths)
    assert padding_fraction(grouped,
                            lengths) < 0.5 * padding_fraction(plain, lengths)


def test_mega_batch_mult_shuffles_batches(monkeypatch):
    lengths = make_lengths(2048, 0)
    batch_size = 8
    batches = to_batches(
        list(
            build(monkeypatch,
                  lengths,
                  batch_size=batch_size,
                  mega_batch_mult=16)), batch_size)
    longest = [max(lengths[i] for i in b) for b in batches]
    positions = torch.arange(len(longest), dtype=torch.float)
    correlation = torch.corrcoef(
        torch.stack([positions,
                     torch.tensor(longest, dtype=torch.float)]))
    assert abs(correlation[0, 1]) < 0.2
    # Long batches are spread out, not all in one place.
    top = sorted(range(len(longest)), key=lambda k: -longest[k])[:32]
    assert max(top) - min(top) > len(batches) // 2


@pytest.mark.parametrize('world_size', [1, 4])
@pytest.mark.parametrize('num_image,num_text', [(301, 157), (203, 0),
                                                (64, 32)])
@pytest.mark.parametrize('seed,epoch', [(0, 0), (42, 3)])
def test_matches_official_order(monkeypatch, world_size, num_image, num_text,
                                seed, epoch):
    lengths = make_lengths(num_image, num_text, seed=seed)
    batch_size = 4
    samplers_per_rank = [
        build(monkeypatch,
              lengths,
              rank,
              world_size,
              batch_size=batch_size,
              seed=seed,
              round_up=False) for rank in range(world_size)
    ]
    per_rank = []
    for sampler in samplers_per_rank:
        sampler.set_epoch(epoch)
        per_rank.append(list(sampler))

    # The official trainer passes no generator, so every draw comes from
    # torch's global generator, in the order this sampler draws from its own.
    with torch.random.fork_rng():
        torch.manual_seed(seed + epoch)
        expected = official_get_modality_length_grouped_indices(
            lengths, batch_size, world_size)

    assert global_order(per_rank, batch_size) == expected


def test_sign_only_marks_modality(monkeypatch):
    image_only = make_lengths(130, 0)
    text_only = [-n for n in image_only]
    assert list(build(monkeypatch, image_only, 0, 2, batch_size=4)) == list(
        build(monkeypatch, text_only, 0, 2, batch_size=4))


def test_group_by_modality_false_pools_modalities(monkeypatch):
    lengths = make_lengths(1024, 1024)
    batches = to_batches(
        list(
            build(monkeypatch,
                  lengths,
                  batch_size=8,
                  mega_batch_mult=16,
                  group_by_modality=False)), 8)
    assert sum(is_mixed(b, lengths) for b in batches) > 10


def test_build_from_registry():
    sampler = DATA_SAMPLERS.build(dict(type='LengthGroupedSampler',
                                       batch_size=4),
                                  default_args=dict(dataset=FakeDataset(
                                      make_lengths(30, 10)),
                                                    seed=0))
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.seed == 0
    assert sorted(sampler) == list(range(40))


def test_in_dataloader(monkeypatch):
    lengths = make_lengths(70, 30)
    sampler = build(monkeypatch, lengths, batch_size=4)
    loader = DataLoader(FakeDataset(lengths), batch_size=4, sampler=sampler)
    batches = [batch.tolist() for batch in loader]
    assert batches == to_batches(list(sampler), 4)
    assert all(len(b) == 4 for b in batches)
    assert sum(is_mixed(b, lengths) for b in batches) <= 2


def test_rejects_zero_length(monkeypatch):
    with pytest.raises(ValueError, match=r'modality_lengths\[2\] is 0'):
        build(monkeypatch, [5, -3, 0, 7], batch_size=2)


def test_rejects_dataset_without_modality_lengths(monkeypatch):
    monkeypatch.setattr(samplers, 'get_dist_info', lambda: (0, 1))
    with pytest.raises(TypeError, match='modality_lengths'):
        LengthGroupedSampler(list(range(10)), batch_size=2, seed=0)


def test_rejects_mismatched_lengths(monkeypatch):
    dataset = FakeDataset([3, 4])
    monkeypatch.setattr(FakeDataset, '__len__', lambda self: 5)
    with pytest.raises(ValueError, match='5 samples but 2'):
        LengthGroupedSampler(dataset, batch_size=2, seed=0)


@pytest.mark.parametrize('kwargs', [
    dict(batch_size=0),
    dict(batch_size=2, mega_batch_mult=0),
])
def test_rejects_bad_sizes(monkeypatch, kwargs):
    with pytest.raises(ValueError):
        build(monkeypatch, [3, -4], **kwargs)
