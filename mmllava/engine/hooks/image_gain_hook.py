"""Measure how much a model reads its images: its held-out loss with each
sample's own image against the same samples with another sample's image
and with a blank one."""
from collections import defaultdict
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose, pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from torch import nn
from torch.distributed.fsdp import FullyShardedDataParallel
from torch.utils.data import DataLoader, Dataset

from mmllava.datasets import LLaVADataset
from mmllava.datasets.transforms import blind_pipeline
from mmllava.registry import HOOKS, TRANSFORMS
from mmllava.utils.parameters import is_partitioned
from mmllava.utils.rng import rng_left_as_found

DATA_BATCH = Optional[dict]
#: The three ways each sample is shown, in the order they are measured.
VARIANTS = ('own', 'shuffled', 'blank')


def image_derangement(image_paths: Sequence[str], seed: int = 0) -> list:
    """A seeded permutation ``perm`` of the samples in which every sample
    gets an image other than its own: ``image_paths[perm[i]] !=
    image_paths[i]`` for every ``i``, also where several samples share one
    image file. Each image is used as often as in the set itself.

    The samples are laid out grouped by image (groups and members in seeded
    random order) and each takes the image of the sample as many places on
    as the largest group is long, which lands outside its own group.

    Args:
        image_paths (Sequence[str]): Each sample's image.
        seed (int): Seed of the order. Defaults to 0.

    Returns:
        list[int]: ``perm``.
    """
    groups = defaultdict(list)
    for index, path in enumerate(image_paths):
        groups[path].append(index)
    largest = max((len(members) for members in groups.values()), default=0)
    if len(groups) < 2 or 2 * largest > len(image_paths):
        raise ValueError(
            'Cannot give every sample an image other than its own: '
            f'{largest} of the {len(image_paths)} samples share one image '
            f'({len(groups)} distinct images); at most half may.')
    rng = np.random.default_rng(seed)
    # Sorted first, so the order depends on the seed only.
    paths = sorted(groups)
    order = [index for group in rng.permutation(len(paths))
             for index in rng.permutation(groups[paths[group]]).tolist()]
    perm = [0] * len(order)
    for position, index in enumerate(order):
        perm[index] = order[(position + largest) % len(order)]
    return perm


def holds_sharded_weights(model: nn.Module) -> bool:
    """Whether the model's weights are split across processes (FSDP,
    DeepSpeed ZeRO-3), so that its module cannot run outside the wrapper."""
    return any(isinstance(module, FullyShardedDataParallel)
               for module in model.modules()) or any(
                   is_partitioned(param) for param in model.parameters())


class _ImageVariant(Dataset):
    """The measured samples, each with the image at ``img_paths[i]``, run
    through ``pipeline``; a sample the pipeline drops comes back None."""

    def __init__(self, dataset: LLaVADataset, indices: Sequence[int],
                 img_paths: Sequence[str], pipeline: Compose) -> None:
        self.dataset, self.indices = dataset, indices
        self.img_paths, self.pipeline = img_paths, pipeline

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[int, Optional[dict]]:
        info = self.dataset.get_data_info(self.indices[position])
        info['img_path'] = self.img_paths[position]
        return position, self.pipeline(info)


def collate_kept(items: list) -> tuple[list, Optional[dict]]:
    """The positions of the samples kept, and their ``pseudo_collate``
    (None when the pipeline dropped them all)."""
    kept = [(position, sample) for position, sample in items
            if sample is not None]
    if not kept:
        return [], None
    return [position for position, _ in kept], \
        pseudo_collate([sample for _, sample in kept])


@HOOKS.register_module()
class ImageGainHook(Hook):
    """Every ``interval`` iterations and at the end of training, measure
    what the images are worth to the model on held-out conversations.

    On each sample's supervised (answer) tokens, in nats per token:
    ``loss_own`` with its own image; ``loss_shuffled`` with the image of
    another sample (a fixed, seeded :func:`image_derangement` over the whole
    set); ``loss_blank`` with a blank image (:class:`BlankImage` in the
    image processor's mean colour, as ``tools/test.py --blind``). The gains
    ``image_gain = loss_shuffled - loss_own`` and ``image_gain_blank =
    loss_blank - loss_own`` are about 0 for a model that ignores its images
    and grow as it reads them. Each loss is the token-weighted mean over the
    set (its summed token losses over its supervised tokens).

    Written to the visualizer (``scalars.json``, TensorBoard...) at the
    iteration, as ``{prefix}/loss_own``, ``{prefix}/loss_shuffled``,
    ``{prefix}/loss_blank``, ``{prefix}/image_gain``,
    ``{prefix}/image_gain_blank`` and, per kind, ``{prefix}/<kind>/image_gain``
    and ``{prefix}/<kind>/image_gain_blank``; also into the log, and into
    the message hub's runtime info under ``'image_gain'``. Not as message
    hub scalars: mmengine's log processor would write those again, stale
    and (keys with "loss") averaged over ten measurements, with every
    validation.

    Text-only records and records with several images are skipped (logged
    once). A sample that the pipeline drops or truncates differently in one
    of the three variants (its answer cut by ``max_length``) is left out of
    all three, and counted in the log.
    The model runs in eval mode under ``torch.no_grad`` and goes back to
    training after; its weights and the training RNG are untouched. Every
    process measures the whole set: keep it to a few hundred samples.

    Args:
        data_file (str): Held-out LLaVA conversation records with answers
            (``.json`` or ``.jsonl``, as :class:`LLaVADataset` reads).
        pipeline (Sequence[dict]): The training pipeline (``LoadImage`` ...
            ``TokenizeConversation`` in ``'train'`` mode, so that the answers
            become labels ... ``PackLLaVAInputs``). Its ``ProcessImage`` (or
            ``AnyResImage``) gives the blank colour.
        image_folder (str): Folder that the records' ``image`` paths are
            relative to. Defaults to ``''``.
        interval (int): Training iterations between measurements.
            Defaults to 500.
        batch_size (int): Samples per forward pass. Defaults to 8.
        max_samples (int, optional): Measure only the first this many
            records with an image. Defaults to None (all).
        kind_key (str, optional): A record key naming the sample's kind
            (the demo's ``'type'``: caption, colour, count...): each kind
            gets its own gains. None: no per-kind gains. Defaults to
            ``'type'``.
        kinds (Sequence[str], optional): Measure only the records of these
            kinds (e.g. ``('caption',)`` for a captioning stage). Defaults
            to None (all).
        seed (int): Seed of the image derangement. Defaults to 0.
        at_start (bool): Also measure before the first iteration.
            Defaults to False.
        prefix (str): Prefix of the scalar names. Defaults to ``'val'``.
    """

    priority = 'LOW'

    def __init__(self,
                 data_file: str,
                 pipeline: Sequence[dict],
                 image_folder: str = '',
                 interval: int = 500,
                 batch_size: int = 8,
                 max_samples: Optional[int] = None,
                 kind_key: Optional[str] = 'type',
                 kinds: Optional[Sequence[str]] = None,
                 seed: int = 0,
                 at_start: bool = False,
                 prefix: str = 'val') -> None:
        for name, value in (('interval', interval),
                            ('batch_size', batch_size),
                            ('max_samples', max_samples)):
            if name == 'max_samples' and value is None:
                continue
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'ImageGainHook {name} must be a positive '
                                 f'integer, got {value!r}')
        self.data_file, self.image_folder = data_file, image_folder
        self.pipeline_cfg = list(pipeline)
        self.interval, self.batch_size = interval, batch_size
        self.max_samples, self.kind_key = max_samples, kind_key
        if kinds is not None and kind_key is None:
            raise ValueError('ImageGainHook kinds selects records by their '
                             'kind_key; give one.')
        self.kinds = None if kinds is None else set(kinds)
        self.seed, self.at_start, self.prefix = seed, at_start, prefix
        self._variants: Optional[dict] = None
        self._kinds: list = []
        self._last_measured: Optional[int] = None
        self._sharded = False

    def before_train(self, runner) -> None:
        # Built here, not in __init__: the files are read once the run
        # starts, and a missing one stops it before the first step.
        self._variants = self._build_variants(runner.logger)
        if holds_sharded_weights(runner.model):
            self._sharded = True
            runner.logger.warning(
                'ImageGainHook: the model\'s weights are sharded across '
                'processes (FSDP or DeepSpeed ZeRO-3), so the image gain is '
                'not measured in this run; measure a consolidated checkpoint '
                'instead (examples/image_gain_demo.py).')
            return
        if self.at_start:
            self.measure(runner, iterations_done=runner.iter)

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: DATA_BATCH = None,
                         outputs: Optional[dict] = None) -> None:
        if self.every_n_train_iters(runner, self.interval):
            # runner.iter counts this iteration only after the hooks ran.
            self.measure(runner, iterations_done=runner.iter + 1)

    def after_train(self, runner) -> None:
        if self._last_measured != runner.iter:
            self.measure(runner, iterations_done=runner.iter)

    def _build_variants(self, logger) -> dict:
        """Per variant, the samples as a :class:`_ImageVariant`."""
        transforms = [TRANSFORMS.build(step) for step in self.pipeline_cfg]
        processors = [step.image_processor for step in transforms
                      if hasattr(step, 'image_processor')]
        if not processors:
            raise ValueError(
                'ImageGainHook needs the image processor of the pipeline '
                '(a ProcessImage or AnyResImage step) for the blank colour; '
                f'the pipeline has {[type(t).__name__ for t in transforms]}')
        blank = Compose([TRANSFORMS.build(step) for step in blind_pipeline(
            self.pipeline_cfg, processors[0].image_mean)])
        dataset = LLaVADataset(
            self.data_file, self.image_folder,
            extra_keys=(self.kind_key, ) if self.kind_key else ())
        img_paths = [dataset.get_data_info(index)['img_path']
                     for index in range(len(dataset))]
        with_image = [index for index, path in enumerate(img_paths)
                      if isinstance(path, str)]
        text_only = img_paths.count(None)
        if text_only:
            logger.info(f'ImageGainHook: skipping the {text_only} text-only '
                        f'records of {self.data_file} (no image to '
                        'compare).')
        several = len(img_paths) - text_only - len(with_image)
        if several:
            # Another sample's image list would not match its placeholders.
            logger.info(f'ImageGainHook: skipping the {several} records of '
                        f'{self.data_file} with several images (their images '
                        'are not swapped between samples).')
        if self.kinds is not None:
            with_image = [
                index for index in with_image
                if dataset.get_data_info(index).get(self.kind_key)
                in self.kinds]
            if not with_image:
                raise ValueError(
                    f'ImageGainHook: no record of {self.data_file} with an '
                    f'image has a {self.kind_key!r} in {sorted(self.kinds)}')
        indices = with_image[:self.max_samples]
        infos = [dataset.get_data_info(index) for index in indices]
        paths = [info['img_path'] for info in infos]
        perm = image_derangement(paths, self.seed)
        self._kinds = [info.get(self.kind_key) if self.kind_key else None
                       for info in infos]
        own = Compose(transforms)
        return dict(
            own=_ImageVariant(dataset, indices, paths, own),
            shuffled=_ImageVariant(dataset, indices,
                                   [paths[i] for i in perm], own),
            blank=_ImageVariant(dataset, indices, paths, blank))

    @torch.no_grad()
    def _sample_losses(self, model, variant: Dataset) -> dict:
        """``{position: (summed loss, supervised tokens)}`` of the kept
        samples."""
        loader = DataLoader(variant, batch_size=self.batch_size,
                            shuffle=False, collate_fn=collate_kept)
        results = {}
        for positions, data in loader:
            if not positions:
                continue
            batch = model.data_preprocessor(data, False)
            losses, counts = model.sample_losses(**batch)
            results.update(zip(positions, zip(losses.tolist(),
                                              counts.tolist())))
        return results

    def compute(self, model) -> tuple[dict, int, int]:
        """Measure ``model`` (not a wrapper) on the three variants.

        Returns:
            tuple: The scalars by name, the samples measured and the samples
            left out (dropped or truncated differently in a variant).
        """
        if self._variants is None:
            # Called outside a run (a trained checkpoint measured on its
            # own): read the samples now.
            self._variants = self._build_variants(
                MMLogger.get_current_instance())
        was_training = model.training
        model.eval()
        # Its dataloaders draw their seeds from torch's generator: left as
        # found, so that measuring does not change the training that follows
        # (nor a resumed run's bit-exact match).
        try:
            with rng_left_as_found():
                results = {name: self._sample_losses(model,
                                                     self._variants[name])
                           for name in VARIANTS}
        finally:
            model.train(was_training)
        # Only samples kept whole in all three variants compare like for
        # like: the same answer tokens.
        counts = {position: result[1]
                  for position, result in results['own'].items()}
        kept = [position for position, count in counts.items()
                if count > 0 and all(
                    results[name].get(position, (0, -1))[1] == count
                    for name in VARIANTS)]
        if not kept:
            raise ValueError(f'ImageGainHook: no sample of {self.data_file} '
                             'kept a supervised token in all three variants.')
        groups = {None: kept}
        for position in kept:
            kind = self._kinds[position]
            if kind is not None:
                groups.setdefault(str(kind), []).append(position)
        scalars = {}
        for kind, positions in groups.items():
            tokens = sum(counts[position] for position in positions)
            loss = {name: sum(results[name][position][0]
                              for position in positions) / tokens
                    for name in VARIANTS}
            key = self.prefix if kind is None else f'{self.prefix}/{kind}'
            if kind is None:
                for name in VARIANTS:
                    scalars[f'{key}/loss_{name}'] = loss[name]
            scalars[f'{key}/image_gain'] = loss['shuffled'] - loss['own']
            scalars[f'{key}/image_gain_blank'] = loss['blank'] - loss['own']
        return scalars, len(kept), len(self._kinds) - len(kept)

    def measure(self, runner, iterations_done: int) -> dict:
        """Compute the gains and write them to the visualizer, the log and
        the message hub (nothing when the weights are sharded)."""
        if self._sharded:
            return {}
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        scalars, num_kept, num_left_out = self.compute(model)
        self._last_measured = iterations_done
        runner.visualizer.add_scalars(scalars, step=iterations_done)
        runner.message_hub.update_info(
            'image_gain', dict(scalars, iter=iterations_done))
        runner.logger.info(self._summary(scalars, iterations_done, num_kept,
                                         num_left_out))
        return scalars

    def _summary(self, scalars: dict, iterations_done: int, num_kept: int,
                 num_left_out: int) -> str:
        prefix = self.prefix
        line = (f'Image gain after {iterations_done} iterations on '
                f'{num_kept} samples: {scalars[f"{prefix}/image_gain"]:.4f} '
                f'vs shuffled, {scalars[f"{prefix}/image_gain_blank"]:.4f} '
                'vs blank images (loss own '
                f'{scalars[f"{prefix}/loss_own"]:.4f}, shuffled '
                f'{scalars[f"{prefix}/loss_shuffled"]:.4f}, blank '
                f'{scalars[f"{prefix}/loss_blank"]:.4f})')
        kinds = [kind for kind in dict.fromkeys(
            str(kind) for kind in self._kinds if kind is not None)
            if f'{prefix}/{kind}/image_gain' in scalars]
        if kinds:
            line += '; per kind vs shuffled: ' + ', '.join(
                f'{kind} {scalars[f"{prefix}/{kind}/image_gain"]:.4f}'
                for kind in kinds)
        if num_left_out:
            line += (f'; {num_left_out} samples left out (dropped or '
                     'truncated differently with another image)')
        return line
