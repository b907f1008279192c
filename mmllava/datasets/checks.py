"""Find every problem of a LLaVA json/jsonl data file, before training.

Loading a dataset stops at the first bad record; this module reads on and
collects every fault of every record (structure, turns, ``<image>`` count,
length after tokenizing, the image file itself) into one :class:`Report`.
Each problem carries a stable code from :data:`REASONS` (a fault: the record,
or the file, cannot be trained on as it is) or :data:`WARNINGS` (training
goes on, but not quite as the text reads) and a message that says what was
expected and what came.
"""
import codecs
import json
import os
import os.path as osp
import threading
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from PIL import Image, UnidentifiedImageError

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.conversation import tokenize_conversation
from mmllava.templates.rules import (is_image_field, record_images,
                                     record_problems)
from mmllava.datasets.records import read_records
from mmllava.datasets.transforms.tokenize import truncate_to_length
from mmllava.templates import ChatTemplate

#: Every problem code, in report order, with what it means.
REASONS = {
    'invalid_utf8': 'bytes that are not valid UTF-8',
    'invalid_json': 'not valid json, or not a list of records',
    'no_records': 'a file that holds no records',
    'malformed_fields': 'a missing or malformed field',
    'duplicate_id': 'an id that an earlier record already has',
    'roles_out_of_order': 'turns that do not alternate human, gpt',
    'unpaired_turn': 'a human turn with no answer after it',
    'empty_answer': 'an empty or blank answer',
    'empty_question': 'an empty or blank human turn',
    'image_count_mismatch': '<image> placeholders that do not match the '
                            'images',
    'nested_placeholder': 'a turn that still holds <image> once its '
                          '<image> are moved to the front (<im<image>age>)',
    'template_mismatch': 'a conversation the chat template cannot render',
    'over_max_length': 'longer than max_length, so truncated',
    'truncated_to_nothing': 'no supervised token left after truncation',
    'path_outside_folder': 'an image path that leaves the image folder',
    'missing_file': 'an image file that does not exist',
    'not_an_image': 'a file that is not an image',
    'unreadable_image': 'an image that cannot be decoded (truncated or '
                        'corrupt)',
    'too_small': 'an image with a zero or tiny side',
    'too_large': 'an image of decompression-bomb size',
    'rgb_conversion_failed': 'an image that cannot be converted to RGB',
}

#: Every warning code, in report order, with what it means. A warning does
#: not make a record bad: training takes it, as the official code does.
WARNINGS = {
    'placeholders_merged': 'a turn with several <image>, which training '
                           'merges into one',
}

#: What helps, per code, for a fault of the file as a whole. Such a fault
#: stops a dataset even with ``skip_invalid=True``, which drops records.
FILE_FAULT_HINTS = {
    'invalid_utf8': 'save the file as UTF-8, or fix the bytes at the '
                    'offsets named. skip_invalid=True cannot help: in a '
                    '.json list they are a fault of the whole file (in a '
                    '.jsonl file, each line holding them is one bad record, '
                    'which it drops)',
    'invalid_json': 'fix the file where the message says, so that it '
                    'parses as a json list of records. skip_invalid=True '
                    'cannot help: a file that does not parse as a list '
                    'yields no records to keep',
    'no_records': 'point data_file at a file that holds records. '
                  'skip_invalid=True cannot help: there is nothing to keep',
}


@dataclass(frozen=True)
class Problem:
    """One fault, or one warning.

    Args:
        code (str): A key of :data:`REASONS` or of :data:`WARNINGS`.
        message (str): What is wrong, for a person.
        index (int, optional): The record's position in the file (the
            dataset index); None for a fault of the file as a whole.
        record_id: The record's ``id``, if it has one.
    """

    code: str
    message: str
    index: Optional[int] = None
    record_id: object = None

    @property
    def is_warning(self) -> bool:
        return self.code in WARNINGS

    def __str__(self) -> str:
        where = 'file' if self.index is None else \
            f'record {self.index} (id={self.record_id!r})'
        severity = 'warning: ' if self.is_warning else ''
        return f'{where}: {severity}{self.code}: {self.message}'


@dataclass
class Report:
    """The problems found in one data file.

    Args:
        data_file (str): The file checked.
        num_records (int): How many records it holds.
        problems (list[Problem]): The faults; a record with one is bad.
        records (list): The records as read (what a dataset builds its
            samples from).
        warnings (list[Problem]): What training takes, but not quite as the
            text reads; a record with only warnings is not bad.
    """

    data_file: str
    num_records: int = 0
    problems: list[Problem] = field(default_factory=list)
    records: list = field(default_factory=list, repr=False)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    @property
    def num_bad_records(self) -> int:
        return len({problem.index for problem in self.problems
                    if problem.index is not None})

    @property
    def file_faults(self) -> list[Problem]:
        """The faults of the file as a whole (no record to drop)."""
        return [problem for problem in self.problems if problem.index is None]

    def summary(self) -> dict[str, int]:
        """Problem count per code, in :data:`REASONS` order."""
        counts = Counter(problem.code for problem in self.problems)
        return {code: counts[code] for code in REASONS if counts[code]}

    def warning_summary(self) -> dict[str, int]:
        """Warning count per code, in :data:`WARNINGS` order."""
        counts = Counter(warning.code for warning in self.warnings)
        return {code: counts[code] for code in WARNINGS if counts[code]}

    def file_fault_hints(self) -> list[str]:
        """What helps, once per code of a fault of the file as a whole."""
        codes = dict.fromkeys(problem.code for problem in self.file_faults)
        return [f'{code}: {FILE_FAULT_HINTS[code]}' for code in codes]

    def to_dict(self) -> dict:

        def listed(problems: list[Problem]) -> list[dict]:
            return [dict(index=problem.index, id=problem.record_id,
                         code=problem.code, message=problem.message)
                    for problem in problems]

        return dict(data_file=self.data_file, num_records=self.num_records,
                    num_bad_records=self.num_bad_records,
                    num_problems=len(self.problems), summary=self.summary(),
                    problems=listed(self.problems),
                    num_warnings=len(self.warnings),
                    warning_summary=self.warning_summary(),
                    warnings=listed(self.warnings))


# --- the file ---------------------------------------------------------------

_decoding = threading.local()


def _collect_invalid_utf8(error: UnicodeDecodeError):
    _decoding.offsets.append(error.start)
    return '\ufffd', error.end


codecs.register_error('mmllava.collect_invalid_utf8', _collect_invalid_utf8)


def decode_utf8(raw: bytes) -> tuple[str, list[int]]:
    """Decode in one pass: the text (U+FFFD for bad bytes) and the byte
    offset of every invalid sequence."""
    _decoding.offsets = []
    text = raw.decode('utf-8', errors='mmllava.collect_invalid_utf8')
    return text, _decoding.offsets


def _line_of_offsets(raw: bytes, offsets: Sequence[int]) -> dict[int, int]:
    """1-based line number of each byte offset (offsets sorted)."""
    lines, line, start = {}, 1, 0
    for offset in offsets:
        line += raw.count(b'\n', start, offset)
        start = offset
        lines[offset] = line
    return lines


def load_records(data_file: str) -> tuple[list[object], list[Problem]]:
    """Read a data file, collecting what cannot be read instead of stopping.

    A clean file is read by :func:`read_records`, as the dataset reads it.
    Otherwise every invalid UTF-8 sequence is reported with its byte offset
    and line, and every jsonl line that is not json is reported with its
    line; the other records are still returned and checked. A json list that
    does not parse yields no records; a file that holds none (empty, blank
    lines only, or ``[]``) is a ``no_records`` fault, as no training can
    start from it.

    Returns:
        tuple[list, list[Problem]]: The records (in dataset order) and the
        problems. For jsonl, record ``i`` is the ``i``-th non-blank line.
    """
    with open(data_file, 'rb') as file:
        raw = file.read()
    # An empty file is no json list; say what it is rather than where the
    # json parser stopped.
    records, problems = _parse_records(data_file, raw) if raw.strip() \
        else ([], [])
    if not records and not problems:
        what = 'is empty (0 bytes)' if not raw else \
            'holds only white space' if not raw.strip() else \
            'is an empty json list'
        problems.append(Problem(
            'no_records', f'no records in {data_file}: the file {what}'))
    return records, problems


def _parse_records(data_file: str,
                   raw: bytes) -> tuple[list[object], list[Problem]]:
    """:func:`load_records` of a file with some content."""
    text, invalid_offsets = decode_utf8(raw)
    if not invalid_offsets:
        try:
            return read_records(data_file), []
        except ValueError:
            pass  # collected below, every fault rather than the first
    lines_of = _line_of_offsets(raw, invalid_offsets)
    invalid_lines = Counter(lines_of.values())
    first_offset = {}
    for offset, line in lines_of.items():
        first_offset.setdefault(line, offset)

    def utf8_message(line: int) -> str:
        count = invalid_lines[line]
        return (f'line {line}: {count} invalid UTF-8 sequence'
                f'{"s" if count > 1 else ""}, the first at byte offset '
                f'{first_offset[line]}')

    records, problems = [], []
    if not data_file.endswith('.jsonl'):
        problems += [Problem('invalid_utf8', utf8_message(line))
                     for line in sorted(invalid_lines)]
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            return [], problems + [Problem(
                'invalid_json', f'not valid json ({error})')]
        if not isinstance(parsed, list):
            return [], problems + [Problem(
                'invalid_json', 'expected a json list of records, got '
                f'{type(parsed).__name__}')]
        return parsed, problems
    for line_number, line in enumerate(text.split('\n'), 1):
        if not line.strip():
            continue
        index = len(records)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            record = None
            problems.append(Problem(
                'invalid_json', f'line {line_number}: not valid json '
                f'({error})', index))
        record_id = record.get('id') if isinstance(record, dict) else None
        if line_number in invalid_lines:
            problems.append(Problem('invalid_utf8', utf8_message(line_number),
                                    index, record_id))
        records.append(record)
    return records, problems


# --- a record's text --------------------------------------------------------

def check_rules(record: object, index: int,
                template: Optional[ChatTemplate] = None) -> list[Problem]:
    """Every rule of a LLaVA record that ``record`` breaks
    (:func:`~mmllava.templates.rules.record_problems`: fields, turn
    order, empty turns, ``<image>`` placement and, with ``template``, what
    the template takes), as problems."""
    return [Problem(broken.code, broken.message, index, broken.sample_id)
            for broken in record_problems(record, template)]


def check_length(record: dict, index: int, tokenizer,
                 template: ChatTemplate, max_length: Optional[int],
                 num_image_tokens: Optional[int]) -> list[Problem]:
    """Tokenize as training does; report a record the template cannot
    render, one over ``max_length`` and one truncated to no supervision."""
    record_id = record.get('id')
    try:
        input_ids, labels = tokenize_conversation(
            record['conversations'], template, tokenizer, 'image' in record,
            record_id, num_images=record_images(record))
    except ValueError as error:
        message = str(error).split(': ', 1)[-1]
        return [Problem('template_mismatch', message, index, record_id)]
    if max_length is None:
        return []
    length = sum(num_image_tokens if token == IMAGE_TOKEN_INDEX else 1
                 for token in input_ids)
    if length <= max_length:
        return []
    _, kept_labels = truncate_to_length(input_ids, labels, max_length,
                                        num_image_tokens)
    supervised = sum(label != IGNORE_INDEX for label in labels)
    kept = sum(label != IGNORE_INDEX for label in kept_labels)
    counted = f'{length} tokens (an image counted as {num_image_tokens}), ' \
        f'{length - max_length} over max_length {max_length}'
    if kept == 0:
        return [Problem('truncated_to_nothing', f'{counted}: truncated, it '
                        f'keeps none of its {supervised} supervised tokens '
                        '(training drops it)', index, record_id)]
    return [Problem('over_max_length', f'{counted}: truncated, it keeps '
                    f'{kept} of {supervised} supervised tokens', index,
                    record_id)]


# --- a record's image -------------------------------------------------------

def image_path(image: str, image_folder: str,
               allow_outside_paths: bool = False
               ) -> tuple[str, Optional[str]]:
    """The path training opens, and why it is refused (None if it is not):
    a path that is absolute or climbs out with ``..``."""
    path = osp.join(image_folder, image)
    if allow_outside_paths:
        return path, None
    normalized = osp.normpath(image)
    if osp.isabs(image) or normalized == os.pardir or \
            normalized.startswith(os.pardir + os.sep):
        return path, (f'image path {image!r} leaves the image folder '
                      f'{image_folder!r} (allow it with '
                      '--allow-outside-paths)')
    return path, None


def check_image(path: str, max_pixels: Optional[int] = None,
                min_side: int = 2) -> list[tuple[str, str]]:
    """Open, decode and convert an image as ``LoadImage`` does.

    Args:
        path (str): The image file.
        max_pixels (int, optional): Larger images are decompression-bomb
            sized. Defaults to PIL's ``Image.MAX_IMAGE_PIXELS`` (PIL itself
            refuses images over twice that).
        min_side (int): Images with a shorter side (e.g. 1x1 placeholders
            of failed downloads) are reported. Defaults to 2.

    Returns:
        list[tuple[str, str]]: ``(code, message)`` per problem.
    """
    if max_pixels is None:
        max_pixels = Image.MAX_IMAGE_PIXELS
    if not osp.exists(path):
        return [('missing_file', f'{path}: no such file')]
    if not osp.isfile(path):
        return [('missing_file', f'{path}: not a file')]
    if osp.getsize(path) == 0:
        return [('not_an_image', f'{path}: empty file (0 bytes)')]
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > max_pixels:
                return [('too_large', f'{path}: {width}x{height} px, over '
                         f'{max_pixels} pixels')]
            if min(width, height) < min_side:
                return [('too_small', f'{path}: {width}x{height} px, a side '
                         f'under {min_side} px')]
            image.load()
            try:
                image.convert('RGB')
            except (ValueError, OSError) as error:
                return [('rgb_conversion_failed',
                         f'{path}: mode {image.mode} to RGB: {error}')]
    except UnidentifiedImageError:
        return [('not_an_image', f'{path}: PIL cannot identify it as an '
                 'image')]
    except Image.DecompressionBombError as error:
        # Training cannot open it either (LoadImage says the same).
        return [('too_large', f'{path}: PIL refuses it as a possible '
                 f'decompression bomb: {error}')]
    # Decoders raise many types (OSError, SyntaxError, zlib.error, ...).
    except Exception as error:  # noqa: BLE001
        return [('unreadable_image',
                 f'{path}: {type(error).__name__}: {error}')]
    return []


# --- the whole file ---------------------------------------------------------

def check_records(records: Sequence[object],
                  image_folder: str = '',
                  tokenizer=None,
                  template: Optional[ChatTemplate] = None,
                  max_length: Optional[int] = None,
                  num_image_tokens: Optional[int] = None,
                  workers: int = 4,
                  max_pixels: Optional[int] = None,
                  min_side: int = 2,
                  allow_outside_paths: bool = False,
                  check_images: bool = True,
                  on_record: Optional[Callable[[int], None]] = None,
                  chunk_size: int = 512) -> list[Problem]:
    """Every problem and warning of the records, in record order.

    Text checks run in this thread (the tokenizer is not shared between
    threads); images are checked meanwhile in a pool of ``workers`` threads,
    each distinct path once, a chunk of records at a time.

    Args:
        records (Sequence): Records as :func:`load_records` returns them
            (``None`` for a line that did not parse).
        image_folder (str): Folder that ``image`` paths are relative to.
        tokenizer: A built tokenizer; with ``template``, records are
            tokenized as in training. Without, length checks are skipped.
        template (ChatTemplate, optional): The chat template.
        max_length (int, optional): As ``TokenizeConversation``'s.
        num_image_tokens (int, optional): Needed with ``max_length``.
        workers (int): Image-checking threads.
        max_pixels (int, optional), min_side (int): See :func:`check_image`.
        allow_outside_paths (bool): Accept absolute image paths and ``..``.
        check_images (bool): Open and decode every image file. Without,
            only image paths are checked. Defaults to True.
        on_record (callable, optional): Called once per record checked,
            with the number of records (for a progress bar).
        chunk_size (int): Records whose images are in flight at once.
    """
    if max_length is not None and num_image_tokens is None:
        raise ValueError('max_length needs num_image_tokens (the feature '
                         'rows of one image) to count sample lengths.')
    if (tokenizer is None) != (template is None):
        raise ValueError('give both a tokenizer and a template, or neither')
    if max_length is not None and tokenizer is None:
        raise ValueError('max_length needs a tokenizer and a template to '
                         'count tokens.')
    image_results: dict[str, list[tuple[str, str]]] = {}
    first_with_id: dict[object, int] = {}
    problems: list[Problem] = []
    with warnings.catch_warnings(), \
            ThreadPoolExecutor(max(workers, 1)) as pool:
        # Sizes are checked against max_pixels; PIL's warning would repeat it.
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        for start in range(0, len(records), chunk_size):
            chunk = range(start, min(start + chunk_size, len(records)))
            image_paths, futures = {}, {}
            for index in chunk:
                record = records[index]
                if not isinstance(record, dict) or \
                        not is_image_field(record.get('image')):
                    continue
                image = record['image']
                image_paths[index] = [
                    image_path(name, image_folder, allow_outside_paths)
                    for name in (image if isinstance(image, list)
                                 else [image])]
                for path, refused in image_paths[index]:
                    if check_images and refused is None and \
                            path not in image_results and path not in futures:
                        futures[path] = pool.submit(check_image, path,
                                                    max_pixels, min_side)
            text_problems = {
                index: check_text(records[index], index, first_with_id,
                                   tokenizer, template, max_length,
                                   num_image_tokens)
                for index in chunk}
            for path, future in futures.items():
                image_results[path] = future.result()
            for index in chunk:
                problems += text_problems[index]
                for path, refused in image_paths.get(index, ()):
                    record_id = records[index].get('id')
                    if refused is not None:
                        problems.append(Problem('path_outside_folder',
                                                refused, index, record_id))
                    else:
                        problems += [Problem(code, message, index, record_id)
                                     for code, message in
                                     image_results.get(path, ())]
                if on_record is not None:
                    on_record(len(records))
    return problems


def check_text(record: object, index: int, first_with_id: dict, tokenizer,
               template, max_length, num_image_tokens) -> list[Problem]:
    """The problems of one record that need no image file: the rules of a
    record (:func:`check_rules`: fields, turns, ``<image>`` count and, with
    a template, what it takes), duplicate ids (``first_with_id`` maps each
    id to its first record) and, with a tokenizer, lengths (pass None for
    ``tokenizer`` to skip them)."""
    if record is None:  # a jsonl line that is not json, reported on load
        return []
    problems = check_rules(record, index, template)
    record_id = record.get('id') if isinstance(record, dict) else None
    if isinstance(record_id, (str, int)):
        if record_id in first_with_id:
            problems.append(Problem(
                'duplicate_id', f'id {record_id!r} is also the id of record '
                f'{first_with_id[record_id]}', index, record_id))
        else:
            first_with_id[record_id] = index
    if tokenizer is None or any(not problem.is_warning
                                for problem in problems):
        return problems
    return problems + check_length(record, index, tokenizer, template,
                                   max_length, num_image_tokens)


def check_data_file(data_file: str, image_folder: str = '',
                    **kwargs) -> Report:
    """Read ``data_file`` and find every problem of it.

    Args:
        data_file (str): A ``.json`` list or a ``.jsonl`` file.
        image_folder (str): Folder that ``image`` paths are relative to.
        **kwargs: :func:`check_records` options.
    """
    records, problems = load_records(data_file)
    problems += check_records(records, image_folder, **kwargs)
    problems.sort(key=lambda problem: -1 if problem.index is None
                  else problem.index)
    return Report(data_file, len(records),
                  [problem for problem in problems if not problem.is_warning],
                  records,
                  [problem for problem in problems if problem.is_warning])
