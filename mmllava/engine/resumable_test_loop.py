"""A test loop that saves each batch's predictions as it makes them, and
resumes an interrupted run from them."""
import hashlib
import json
import os
import os.path as osp
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.runner import TestLoop
from mmengine.runner.amp import autocast
# What mmengine's TestLoop uses to report a loss the model returns.
from mmengine.runner.loops import _parse_losses, _update_losses
from mmengine.structures import BaseDataElement
from torch.utils.data import DataLoader

from mmllava.registry import LOOPS

#: Bumped when the records change meaning; a file of another version is
#: refused like one of another checkpoint.
FILE_VERSION = 1
#: What the header's hashes cover, for errors.
HEADER_KEYS = dict(config=' (hash of the model, test dataset and sampler '
                   'config)',
                   dataset=' (hash of the annotations)')


def to_record(value: Any, where: str) -> Any:
    """A data sample's field as JSON values.

    Tuples become lists and numpy scalars Python numbers; tensors and arrays
    inside a dict are left out (the metrics read text and metainfo, and a
    file of logits would dwarf the answers). ``where`` names the field in
    errors.
    """
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {
            str(key): to_record(item, f'{where}.{key}')
            for key, item in value.items()
            if not isinstance(item, (torch.Tensor, np.ndarray))
        }
    if isinstance(value, (list, tuple)):
        return [to_record(item, f'{where}[{index}]')
                for index, item in enumerate(value)]
    raise TypeError(f'{where} holds a {type(value).__name__}, which the '
                    'predictions file cannot store as JSON')


def fingerprint(value: Any) -> str:
    """A short hash of JSON-like ``value``; objects count by their type,
    never by their address, so equal configs hash equally."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False,
                      default=lambda obj: type(obj).__qualname__)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def dataset_fingerprint(dataset) -> str:
    """A hash of every sample's annotation (not its image): a question file
    edited in place changes it."""
    if not hasattr(dataset, 'get_data_info'):
        return fingerprint(type(dataset).__qualname__)
    return fingerprint([dataset.get_data_info(index)
                        for index in range(len(dataset))])


def run_header(runner, dataset) -> dict:
    """What must match for saved predictions to stand for this run's."""
    cfg = runner.cfg
    checkpoint = cfg.get('load_from')
    loader_cfg = cfg.get('test_dataloader') or {}
    if not isinstance(loader_cfg, dict):
        loader_cfg = {}
    return dict(
        version=FILE_VERSION,
        checkpoint=osp.abspath(checkpoint) if checkpoint else None,
        checkpoint_modified=(osp.getmtime(checkpoint)
                             if checkpoint and osp.exists(checkpoint)
                             else None),
        # The batch size and workers may change on resume; the model, data
        # and pipeline (prompts, --blind) may not.
        config=fingerprint(dict(model=cfg.get('model'),
                                dataset=loader_cfg.get('dataset'),
                                sampler=loader_cfg.get('sampler'))),
        dataset=dataset_fingerprint(dataset),
        dataset_length=len(dataset),
        world_size=get_world_size(),
        rank=get_rank())


def read_predictions(path: Path) -> Tuple[Optional[dict], List[dict], int]:
    """The header, the records, and the byte length of the intact lines.

    Every line ends with a newline when written whole; a last line without
    one was torn by a kill and is ignored.
    """
    data = path.read_bytes()
    intact = data.rfind(b'\n') + 1
    lines = data[:intact].decode('utf-8').splitlines()
    if not lines:
        return None, [], 0
    try:
        header = json.loads(lines[0])['header']
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f'{path}: line 1 is not a predictions header '
                         f'({error!r})') from error
    records = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            record = json.loads(line)
            records.append(dict(index=record['index'],
                                sample=record['sample']))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f'{path}: line {number} is not a prediction record '
                f'({error!r}); only a torn last line is skipped') from error
    return header, records, intact


def check_header(saved: dict, current: dict, path: Path) -> None:
    """Refuse predictions made by another checkpoint, data or world size,
    naming every key that differs."""
    differences = [f'{key}{HEADER_KEYS.get(key, "")}: {saved.get(key)!r} '
                   f'in the file, {value!r} now'
                   for key, value in current.items()
                   if saved.get(key) != value]
    if differences:
        raise ValueError(
            f'Cannot resume from {path}: it was written by a different '
            'run (' + '; '.join(differences) + '). Run without resume '
            '(tools/test.py without --resume) to start over.')


def check_order(records: List[dict], order: List[int], path: Path) -> None:
    """The saved records must be this rank's first samples in sampler
    order: the evaluator takes results positionally."""
    if len(records) > len(order):
        raise ValueError(f'{path} holds {len(records)} predictions; this '
                         f'rank has only {len(order)} samples')
    for position, (record, index) in enumerate(zip(records, order)):
        if record['index'] != index:
            raise ValueError(
                f'{path}: line {position + 2} holds sample {record["index"]}'
                f', but the sampler now puts sample {index} there; the '
                'sampler changed since the file was written')


def batches_left(batches: List[List[int]],
                 num_done: int) -> List[Tuple[int, List[int]]]:
    """``(batch index, dataset indices)`` of what is still to predict: the
    batches after the first ``num_done`` samples, the first one cut where
    the saved samples end."""
    left, start = [], 0
    for batch_index, indices in enumerate(batches):
        todo = indices[max(num_done - start, 0):]
        if todo:
            left.append((batch_index, todo))
        start += len(indices)
    return left


@LOOPS.register_module()
class ResumableTestLoop(TestLoop):
    """mmengine's test loop, saving predictions as it goes so that an
    interrupted run resumes where it stopped.

    After each batch the predictions are appended to
    ``<predictions_dir>/rank<r>.jsonl`` (one file per process) and flushed,
    so a kill loses at most the batch in flight. Each line holds the dataset
    index and the data sample as the evaluator hands it to metrics (its
    fields and metainfo, without tensors); the first line is a header: the
    checkpoint, fingerprints of the config and the data, the dataset length
    and the world size.

    With ``resume=True`` the saved predictions are fed to the evaluator
    first and only the remaining samples are generated, so the metrics are
    those of an uninterrupted run; a torn last line is ignored, and a file
    written by another checkpoint, data or world size is refused. Each
    rank keeps its samples in sampler order, which mmengine's
    ``collect_results`` relies on. Without ``resume`` an existing file is
    moved aside to ``rank<r>.jsonl.previous`` (replacing an older one).

    Fresh runs feed the evaluator the stored form of their predictions too,
    so resumed and uninterrupted runs score identical inputs.

    Args:
        runner: The runner; ``runner.cfg.load_from`` is the checkpoint
            recorded in the header.
        dataloader (DataLoader or dict): The test dataloader or its config.
        evaluator (Evaluator or dict or list): The test evaluator.
        fp16 (bool): Test under autocast. Defaults to False.
        resume (bool): Reuse the predictions already in the file. Defaults
            to False.
        predictions_dir (str, optional): Folder of the prediction files.
            Defaults to ``<work_dir>/predictions``.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False,
                 resume: bool = False,
                 predictions_dir: Optional[str] = None) -> None:
        super().__init__(runner, dataloader, evaluator, fp16=fp16)
        if self.dataloader.batch_sampler is None:
            raise TypeError('ResumableTestLoop needs a dataloader with a '
                            'batch sampler (a map-style dataset)')
        self.resume = resume
        folder = Path(predictions_dir or osp.join(runner.work_dir,
                                                  'predictions'))
        self.predictions_file = folder / f'rank{get_rank()}.jsonl'
        self.num_reused = 0
        self.num_generated = 0
        self._file = None

    def run(self) -> dict:
        """Reuse saved predictions, generate the rest, then evaluate."""
        self.runner.call_hook('before_test')
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        self.test_loss.clear()
        dataset = self.dataloader.dataset
        # The rank's samples in the order the dataloader yields them.
        batches = [list(indices) for indices in self.dataloader.batch_sampler]
        order = [index for indices in batches for index in indices]
        records = self._open_predictions(run_header(self.runner, dataset),
                                         order)
        self.num_reused, self.num_generated = len(records), 0
        if records:
            print_log(
                f'Reusing {self.num_reused} predictions from '
                f'{self.predictions_file}; generating the other '
                f'{len(order) - self.num_reused} of this process\'s '
                f'{len(order)} samples.', logger='current')
            self.evaluator.process(
                data_samples=[record['sample'] for record in records])
        try:
            todo = batches_left(batches, len(records))
            for (batch_index, indices), data_batch in zip(
                    todo, self._loader([i for _, i in todo])):
                self.predict_batch(batch_index, data_batch, indices)
        finally:
            self._file.close()
        metrics = self.evaluator.evaluate(len(dataset))
        if self.test_loss:
            metrics.update(_parse_losses(self.test_loss, 'test'))
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        self.runner.call_hook('after_test')
        return metrics

    @torch.no_grad()
    def predict_batch(self, batch_index: int, data_batch: Any,
                      indices: List[int]) -> None:
        """Predict one batch, append it to the file, and evaluate it.

        Args:
            batch_index (int): The batch's index in the full test set (the
                logs count progress by it).
            data_batch: The collated batch.
            indices (list[int]): Its samples' dataset indices.
        """
        self.runner.call_hook('before_test_iter', batch_idx=batch_index,
                              data_batch=data_batch)
        with autocast(enabled=self.fp16):
            outputs = self.runner.model.test_step(data_batch)
        outputs, self.test_loss = _update_losses(outputs, self.test_loss)
        if len(outputs) != len(indices):
            raise ValueError(f'The model returned {len(outputs)} predictions '
                             f'for a batch of {len(indices)} samples '
                             f'(dataset indices {indices})')
        stored = [to_record(output.to_dict() if isinstance(
            output, BaseDataElement) else output, f'sample {index}')
            for index, output in zip(indices, outputs)]
        # Sorted keys: metainfo order follows a set, which varies between
        # processes, and files of equal runs should be equal. One write per
        # batch, flushed: a kill tears at most the last line.
        self._file.write(''.join(
            json.dumps(dict(index=index, sample=sample), ensure_ascii=False,
                       sort_keys=True) + '\n'
            for index, sample in zip(indices, stored)))
        self._file.flush()
        self.num_generated += len(stored)
        # The stored form (JSON values), as a resumed run reads it back.
        self.evaluator.process(data_samples=stored, data_batch=data_batch)
        self.runner.call_hook('after_test_iter', batch_idx=batch_index,
                              data_batch=data_batch, outputs=outputs)

    def _open_predictions(self, header: dict, order: List[int]) -> List[dict]:
        """Open the file for appending; return the records to reuse."""
        path = self.predictions_file
        path.parent.mkdir(parents=True, exist_ok=True)
        records: List[dict] = []
        saved_header = None
        if self.resume and path.exists():
            saved_header, records, intact = read_predictions(path)
            if saved_header is not None:
                check_header(saved_header, header, path)
                check_order(records, order, path)
            # Drop a torn last line so that appends start on a new line.
            os.truncate(path, intact)
        elif path.exists():
            previous = path.with_name(path.name + '.previous')
            path.replace(previous)
            print_log(f'Moved the earlier predictions {path} aside to '
                      f'{previous}', logger='current')
        self._file = open(path, 'a', encoding='utf-8')
        if saved_header is None:
            self._file.write(json.dumps(dict(header=header)) + '\n')
            self._file.flush()
        return records

    def _loader(self, batches: List[List[int]]) -> DataLoader:
        """A dataloader over exactly these batches, loading as the
        configured one does."""
        loader = self.dataloader
        extra = dict(prefetch_factor=loader.prefetch_factor,
                     multiprocessing_context=loader.multiprocessing_context
                     ) if loader.num_workers > 0 else {}
        return DataLoader(loader.dataset, batch_sampler=batches,
                          collate_fn=loader.collate_fn,
                          num_workers=loader.num_workers,
                          pin_memory=loader.pin_memory,
                          worker_init_fn=loader.worker_init_fn,
                          timeout=loader.timeout, **extra)
