"""The LLaVA instruction format: a json list or jsonl of conversations."""
import logging
import os.path as osp
from collections import Counter
from typing import Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmllava.datasets.checks import Problem, Report, check_data_file
from mmllava.registry import DATASETS, TRANSFORMS


@DATASETS.register_module()
class LLaVADataset(BaseDataset):
    """Conversations in the LLaVA json format.

    Each record: ``id``, optional ``image`` (relative to ``image_folder``;
    a list of paths for several images, one ``<image>`` each, as in
    LLaVA-NeXT-Interleave's data), ``conversations`` ``[{"from":
    "human"|"gpt", "value": str}, ...]``, as in
    ``blip_laion_cc_sbu_558k.json`` and ``llava_v1_5_mix665k.json``.

    Loading parses and checks the records but tokenizes nothing; tokenizing
    happens per sample in the pipeline. Each sample's word count and modality
    are recorded on load for :class:`LengthGroupedSampler`.

    The checks on load are those of :mod:`mmllava.datasets.checks` that need
    no tokenizer: fields, turns, ``<image>`` count, duplicate ids, image paths
    that leave ``image_folder`` and, with ``check_images``, the image files.
    By default any problem stops the run before the first step with one
    error listing the first problems; ``tools/data/check_dataset.py`` gives
    the full report, length checks included. A fault of the file as a whole
    (it does not parse, or holds no records) always stops it. Warnings (e.g.
    two ``<image>`` in one turn, merged as in the official code) are logged
    and their records kept. A sample whose image cannot be read during
    training (a decompression bomb included) is read once more, then handled
    by the same policy.

    Args:
        data_file (str): A ``.json`` list or a ``.jsonl`` file.
        image_folder (str): Folder that ``image`` paths are relative to.
        pipeline (Sequence[dict]): Transforms.
        max_refetch (int): How many other samples to try when the pipeline
            drops one (it returns None, e.g. a sample truncated to nothing).
        skip_invalid (bool): Drop the records with problems (and log how many
            and why) instead of stopping; at fetch time, drop a sample whose
            image still fails on the retry, and fetch another. A fault of
            the file as a whole, or no record left, still stops the run.
            Defaults to False.
        check_images (bool): Also open and decode every image on load (slow
            on a large dataset: it reads every file). Defaults to False.
        allow_outside_paths (bool): Accept absolute image paths and paths
            with ``..`` out of ``image_folder``. Defaults to False.
        extra_keys (Sequence[str]): Other record keys copied into each
            sample's data info when the record has them, e.g. ``('type',)``
            for a question kind; list them in :class:`PackLLaVAInputs`'
            ``meta_keys`` too to carry them into the data samples.
            Defaults to ``()``.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """

    #: Problems listed in the error that stops a run; the rest are counted.
    MAX_LISTED_PROBLEMS = 10
    #: The keys a sample's data info is built with.
    INFO_KEYS = ('sample_id', 'img_path', 'conversations', 'modality_length')

    def __init__(self,
                 data_file: str,
                 image_folder: str = '',
                 pipeline: Sequence[dict] = (),
                 max_refetch: int = 1000,
                 skip_invalid: bool = False,
                 check_images: bool = False,
                 allow_outside_paths: bool = False,
                 extra_keys: Sequence[str] = (),
                 **kwargs) -> None:
        clashes = set(extra_keys) & set(self.INFO_KEYS)
        if clashes:
            raise ValueError(f'extra_keys {sorted(clashes)} would replace '
                             f'keys the dataset sets ({self.INFO_KEYS}).')
        self.extra_keys = tuple(extra_keys)
        self.image_folder = image_folder
        self.skip_invalid = skip_invalid
        self.check_images = check_images
        self.allow_outside_paths = allow_outside_paths
        #: Samples dropped at fetch time in this process (each worker
        #: process of a DataLoader counts its own).
        self.num_dropped_fetches = 0
        self._modality_lengths: Optional[np.ndarray] = None
        # Built from mmllava's registry, so the dataset works outside a
        # runner too (mmengine's Compose looks in the scope's registry).
        transforms = [TRANSFORMS.build(step) if isinstance(step, dict)
                      else step for step in pipeline]
        super().__init__(ann_file=data_file, pipeline=transforms,
                         max_refetch=max_refetch, **kwargs)

    def load_data_list(self) -> list[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'LLaVA data file not found: {self.ann_file}')
        # No length checks here: they tokenize every record.
        report = check_data_file(
            self.ann_file, self.image_folder, check_images=self.check_images,
            allow_outside_paths=self.allow_outside_paths)
        records, problems = report.records, report.problems
        # A fault of the file as a whole cannot be skipped record by record.
        if problems and (not self.skip_invalid or report.file_faults):
            raise ValueError(self._problems_message(report))
        bad = {problem.index for problem in problems}
        if bad:
            self._log_skipped(report)
        if len(bad) == len(records):
            # mmengine would fail later, naming neither file nor reason.
            raise ValueError(
                f'{self.ann_file}: no records left: all {len(records)} have '
                'problems and skip_invalid=True dropped them (the warning '
                'above lists the first). Fix the records; see the full '
                f'report: {self._check_command()}')
        warnings = [warning for warning in report.warnings
                    if warning.index not in bad]
        if warnings:
            self._log_warnings(warnings)
        data_list = []
        for index, record in enumerate(records):
            if index in bad:
                continue
            has_image = 'image' in record
            # The official modality length: word count, negative when
            # text-only (never zero).
            words = max(sum(len(turn['value'].split())
                            for turn in record['conversations']), 1)
            data_list.append(
                dict(
                    sample_id=record.get('id', index),
                    img_path=self._image_paths(record['image'])
                    if has_image else None,
                    conversations=record['conversations'],
                    modality_length=words if has_image else -words,
                    **{key: record[key] for key in self.extra_keys
                       if key in record}))
        return data_list

    def _image_paths(self, image: Union[str, list[str]]
                     ) -> Union[str, list[str]]:
        """A record's image path, or its list of paths, in the folder."""
        if isinstance(image, list):
            return [osp.join(self.image_folder, path) for path in image]
        return osp.join(self.image_folder, image)

    def _check_command(self) -> str:
        return (f'python tools/data/check_dataset.py {self.ann_file} '
                f'--image-folder {self.image_folder or "."}')

    def _problems_message(self, report: Report) -> str:
        problems = report.problems
        listed = problems[:self.MAX_LISTED_PROBLEMS]
        where = f'{report.num_bad_records} of {report.num_records} records'
        if report.file_faults:
            where = 'the file as a whole' + (
                f' and {where}' if report.num_bad_records else '')
        lines = [f'{self.ann_file}: {len(problems)} '
                 f'problem{"" if len(problems) == 1 else "s"} in {where}; '
                 'stopping before training.']
        lines += [f'  {problem}' for problem in listed]
        if len(problems) > len(listed):
            lines.append(f'  ... and {len(problems) - len(listed)} more')
        lines.append('Problems per reason: ' + ', '.join(
            f'{code}: {count}' for code, count in report.summary().items()))
        if report.file_faults:
            # skip_invalid drops records, not files: suggest what helps.
            lines += ['What helps:'] + [
                f'  {hint}' for hint in report.file_fault_hints()]
            if len(problems) > len(listed):
                lines.append(f'Full report: {self._check_command()}')
            return '\n'.join(lines)
        if any(problem.code == 'path_outside_folder'
               for problem in problems):
            lines.append('To accept image paths outside image_folder, set '
                         'allow_outside_paths=True on the dataset.')
        lines.append(f'Full report: {self._check_command()}; or set '
                     'skip_invalid=True on the dataset to drop these '
                     'records.')
        return '\n'.join(lines)

    def _log_skipped(self, report: Report) -> None:
        summary = report.summary()
        first = '\n'.join(f'  {problem}' for problem in report.problems[:5])
        print_log(
            f'{self.ann_file}: skipping {report.num_bad_records} of '
            f'{report.num_records} records '
            f'with problems (skip_invalid=True); per reason: '
            + ', '.join(f'{code}: {count}' for code, count in summary.items())
            + f'. The first:\n{first}\nFull report: '
            + self._check_command(),
            logger='current', level=logging.WARNING)

    def _log_warnings(self, warnings: list[Problem]) -> None:
        summary = Counter(warning.code for warning in warnings)
        first = '\n'.join(f'  {warning}' for warning in warnings[:5])
        print_log(
            f'{self.ann_file}: {len(warnings)} '
            f'warning{"" if len(warnings) == 1 else "s"} in records kept '
            'for training; per reason: '
            + ', '.join(f'{code}: {count}' for code, count in summary.items())
            + f'. The first:\n{first}\nFull report: '
            + self._check_command(),
            logger='current', level=logging.WARNING)

    def prepare_data(self, idx: int):
        """Run the pipeline on sample ``idx``; a read error is retried once.

        When the retry fails too, the error propagates, or with
        ``skip_invalid`` the sample is dropped for this fetch (None makes
        :class:`BaseDataset` fetch another index, at most ``max_refetch``
        times), with a warning naming it.
        """
        try:
            return super().prepare_data(idx)
        except OSError:
            pass  # e.g. a file gone or unreadable for a moment: try again
        try:
            return super().prepare_data(idx)
        except OSError as error:
            if not self.skip_invalid:
                raise
            self.num_dropped_fetches += 1
            sample_id = self.get_data_info(idx)['sample_id']
            print_log(
                f'Dropped sample {sample_id!r} (index {idx}) for this fetch: '
                f'it failed twice: {error} ({self.num_dropped_fetches} '
                'dropped so far in this process).', logger='current',
                level=logging.WARNING)
            return None

    @property
    def modality_lengths(self) -> np.ndarray:
        """Per sample: word count, positive with an image, negative without."""
        if self._modality_lengths is None:
            self._modality_lengths = np.asarray(
                [self.get_data_info(index)['modality_length']
                 for index in range(len(self))], dtype=np.int64)
        return self._modality_lengths
