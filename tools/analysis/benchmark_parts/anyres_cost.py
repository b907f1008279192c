"""What AnyRes costs against pad at the same base resolution: image tokens,
the data path and training throughput of one mmllava model on the same
image records (the benchmark's photos)."""
import time
from typing import Callable, Sequence

import torch
from mmengine.dataset import pseudo_collate

from mmllava.datasets import LLaVADataset
from mmllava.models import splice_image_features
from mmllava.registry import MODELS

from benchmark_parts.batches import train_pipeline
from benchmark_parts.models import mmllava_config
from benchmark_parts.sizes import Sizes
from benchmark_parts.training import synchronize

#: Aspect layouts of LLaVA-NeXT's grids (1x2, 2x1, 2x2, 1x3, 3x1 tiles), in
#: tiles as (rows, columns).
GRIDS = ((1, 2), (2, 1), (2, 2), (1, 3), (3, 1))
MERGE_TYPE = 'spatial_unpad'
MODES = ('pad', 'anyres')


def grid_pinpoints(tile_size: int) -> list[tuple[int, int]]:
    """LLaVA-NeXT's grids at ``tile_size`` (``(height, width)``)."""
    return [(rows * tile_size, columns * tile_size)
            for rows, columns in GRIDS]


def anyres_pipeline(sizes: Sizes, tokenizer, template: str) -> list[dict]:
    """The pad pipeline with :class:`AnyResImage` for its image step."""
    pad = train_pipeline(sizes, tokenizer, template)
    tiles = dict(type='AnyResImage', image_processor=sizes.image_processor,
                 grid_pinpoints=grid_pinpoints(sizes.vision['image_size']))
    return [pad[0], tiles, *pad[2:]]


def image_datasets(sizes: Sizes, tokenizer,
                   paths: dict) -> dict[str, LLaVADataset]:
    """The image conversations (``vicuna_v1``) through each pipeline."""
    build = dict(pad=train_pipeline, anyres=anyres_pipeline)
    return {mode: LLaVADataset(paths['conversations'], paths['image_folder'],
                               build[mode](sizes, tokenizer, 'vicuna_v1'))
            for mode in MODES}


def build_models(sizes: Sizes, tokenizer_dir: str,
                 weights: dict) -> dict[str, torch.nn.Module]:
    """The benchmark's model twice, the same weights; AnyRes adds its
    ``image_newline`` (random, seeded)."""
    models = {}
    for mode in MODES:
        cfg = mmllava_config(sizes, tokenizer_dir)
        if mode == 'anyres':
            cfg.update(image_aspect_ratio='anyres',
                       image_grid_pinpoints=grid_pinpoints(
                           sizes.vision['image_size']),
                       mm_patch_merge_type=MERGE_TYPE)
        torch.manual_seed(0)
        model = MODELS.build(cfg)
        missing, unexpected = model.load_state_dict(weights, strict=False)
        extra = {'image_newline'} if mode == 'anyres' else set()
        if set(missing) != extra or unexpected:
            raise RuntimeError(f'{mode} model: missing {missing}, '
                               f'unexpected {unexpected}')
        models[mode] = model
    return models


def spliced_length(model, sample: dict) -> int:
    """Positions the LLM runs for one sample: its text with each image's
    feature rows spliced in (the tower and projector run, the LLM does
    not)."""
    batch = model.data_preprocessor(pseudo_collate([sample]))
    features = model.image_features(batch['pixel_values'],
                                    batch['num_images'],
                                    batch.get('image_sizes'))
    _, mask, _ = splice_image_features(
        batch['input_ids'], batch['attention_mask'], None, features,
        model.llm.get_input_embeddings())
    return int(mask.sum())


def interleaved_seconds(calls: dict[str, Callable[[], None]], rounds: int,
                        device: str) -> dict[str, float]:
    """Each call's total time over ``rounds``, the calls interleaved."""
    seconds = dict.fromkeys(calls, 0.0)
    for _ in range(rounds):
        for name, call in calls.items():
            synchronize(device)
            start = time.perf_counter()
            call()
            synchronize(device)
            seconds[name] += time.perf_counter() - start
    return seconds


def benchmark_anyres(sizes: Sizes, tokenizer, tokenizer_dir: str,
                     paths: dict, weights: dict, device: str) -> dict:
    """Image tokens per image, LLM positions per sample, data path and
    training samples/s (``sizes.anyres_steps`` optimizer steps of batch
    ``sizes.batch_size``, ``sizes.anyres_rounds`` interleaved rounds), pad
    against AnyRes.

    Returns:
        dict: ``image_sizes`` (each image's ``(height, width)``), per mode
        ``image_tokens`` (per image), ``tiles`` (per image),
        ``positions`` (per sample), ``data_samples_per_s`` and
        ``train_samples_per_s``.
    """
    datasets = image_datasets(sizes, tokenizer, paths)
    indices = [index for index in range(len(datasets['pad']))
               if datasets['pad'].get_data_info(index).get('img_path')]
    samples = {mode: [datasets[mode][index] for index in indices]
               for mode in MODES}
    models = build_models(sizes, tokenizer_dir, weights)
    results = {mode: {} for mode in MODES}
    image_sizes = [tuple(size) for sample in samples['anyres']
                   for size in sample['inputs']['image_sizes'].tolist()]
    for mode in MODES:
        model = models[mode]
        tokens = [model.image_token_count(size) for size in image_sizes]
        tiles = [1] * len(image_sizes) if mode == 'pad' \
            else tiles_per_image(samples['anyres'])
        results[mode].update(image_tokens=tokens, tiles=tiles)
        with torch.no_grad():
            results[mode]['positions'] = [spliced_length(model, sample)
                                          for sample in samples[mode]]

    def read(mode):
        batch = [datasets[mode][index] for index in indices]
        models[mode].data_preprocessor(pseudo_collate(batch))

    data_seconds = interleaved_seconds(
        {mode: lambda mode=mode: read(mode) for mode in MODES},
        sizes.data_rounds, 'cpu')
    batches = [list(range(start, min(start + sizes.batch_size,
                                     len(indices))))
               for start in range(0, len(indices), sizes.batch_size)]
    batches = (batches * sizes.anyres_steps)[:sizes.anyres_steps]
    optimizers = {mode: torch.optim.AdamW(
        [p for p in models[mode].parameters() if p.requires_grad],
        lr=sizes.lr) for mode in MODES}

    def train(mode):
        model = models[mode].to(device).train()
        for batch in batches:
            data = model.data_preprocessor(
                pseudo_collate([samples[mode][i] for i in batch]))
            loss = model(**data, mode='loss')['loss']
            loss.backward()
            optimizers[mode].step()
            optimizers[mode].zero_grad()

    train_seconds = interleaved_seconds(
        {mode: lambda mode=mode: train(mode) for mode in MODES},
        sizes.anyres_rounds, device)
    trained = sum(len(batch) for batch in batches) * sizes.anyres_rounds
    for mode in MODES:
        results[mode].update(
            data_samples_per_s=len(indices) * sizes.data_rounds
            / data_seconds[mode],
            train_samples_per_s=trained / train_seconds[mode])
    return dict(image_sizes=image_sizes, grid_pinpoints=grid_pinpoints(
        sizes.vision['image_size']), merge_type=MERGE_TYPE, **results)


def tiles_per_image(samples: Sequence[dict]) -> list[int]:
    """Tiles of each packed AnyRes sample's image (the benchmark's records
    hold one image each)."""
    counts = []
    for sample in samples:
        inputs = sample['inputs']
        if len(inputs['image_sizes']) != 1:
            raise ValueError(f'Expected one image per record, got '
                             f'{len(inputs["image_sizes"])}.')
        counts.append(len(inputs['pixel_values']))
    return counts


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def anyres_rows(cost: dict) -> list[dict]:
    """Rows of the pad-against-AnyRes table."""
    figures = (('image tokens per image', mean(cost['pad']['image_tokens']),
                mean(cost['anyres']['image_tokens'])),
               ('vision tiles per image', mean(cost['pad']['tiles']),
                mean(cost['anyres']['tiles'])),
               ('LLM positions per sample', mean(cost['pad']['positions']),
                mean(cost['anyres']['positions'])),
               ('data path samples/s', cost['pad']['data_samples_per_s'],
                cost['anyres']['data_samples_per_s']),
               ('train samples/s', cost['pad']['train_samples_per_s'],
                cost['anyres']['train_samples_per_s']))
    return [dict(figure=figure, pad=pad, anyres=anyres, ratio=anyres / pad)
            for figure, pad, anyres in figures]


def format_anyres_table(rows: list[dict]) -> str:
    lines = ['| figure (image conversations) | pad | anyres | anyres / pad |',
             '|---|---|---|---|']
    lines += [f'| {r["figure"]} | {r["pad"]:.4g} | {r["anyres"]:.4g} | '
              f'{r["ratio"]:.3g} |' for r in rows]
    return '\n'.join(lines)
