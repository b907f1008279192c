"""Detailed captions for a folder of images, as stage-1 LLaVA records (the
ShareGPT4V pipeline).

A strong vision model captions images through an OpenAI-compatible endpoint
(:func:`caption_with_client`, each image sent as a base64 data URL), or a
trained mmllava captioner captions them in batches
(:func:`caption_with_model`). Both write one record per image to an
:class:`AppendOnlyJsonl`:

.. code-block:: python

    {"id": "cats/001.jpg", "image": "cats/001.jpg",
     "conversations": [{"from": "human", "value": "<image>\\n<instruction>"},
                       {"from": "gpt", "value": "<caption>"}]}

``image`` (and the id) is the path relative to the image folder. The human
instruction is drawn from :data:`CAPTION_INSTRUCTIONS` by a generator seeded
with the run's seed and the image alone, so a resumed run, or replies that
finish in another order, give every image the same instruction. Files that
are not readable images, failed requests and empty captions are reported
(:class:`CaptionFailure`) and never written; a rerun tries them again.
"""
import asyncio
import base64
import io
import os.path as osp
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from PIL import Image

from mmllava.constants import IMAGE_PLACEHOLDER
# Kept apart for tools/data/caption_images.py's --help (light).
from mmllava.datagen.caption_defaults import (CAPTION_INSTRUCTIONS,
                                              DEFAULT_MAX_SIDE, LOCAL_PROMPT)
from mmllava.datagen.client import ChatClient, ChatError, Usage
from mmllava.datagen.output import AppendOnlyJsonl
from mmllava.datagen.pool import run_pool
from mmllava.datagen.runner import FATAL_STATUSES
from mmllava.datasets.checks import check_image
from mmllava.templates import GPT, HUMAN

#: Files a folder listing picks up (compared lower-case).
IMAGE_EXTENSIONS = frozenset(
    {'.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff'})

#: What the vision model is asked for each image.
DEFAULT_PROMPT = (
    'Describe this image in detail for someone who cannot see it. Cover the '
    'main subjects and what they are doing, the setting, colours, materials '
    'and lighting, any legible text, and where things are relative to each '
    'other. Mention only what is visible: do not guess names, places or '
    'intentions the picture does not show. Write plain prose in one to '
    'three paragraphs, without lists or headings.')

#: A local captioner: image paths and a prompt in, one caption per path out
#: (a caption whose ``cut`` is True, as :class:`~mmllava.models.
#: generated_text.GeneratedText` says, is reported as ``caption_cut``).
CaptionBatch = Callable[[list[str], str], list[str]]

#: Failure codes of this module; image codes come from
#: :data:`mmllava.datasets.checks.REASONS`.
CAPTION_REASONS = {
    'request_failed': 'the request failed or the reply was not a chat '
                      'completion',
    'caption_cut': 'the reply was cut at max_tokens (the token budget)',
    'empty_caption': 'the caption was empty or blank',
}

#: Formats sent as they are; others are sent as PNG.
KEPT_FORMATS = ('JPEG', 'PNG')
#: Modes each output format can save; others are converted first.
SAVABLE_MODES = {
    'JPEG': {'L', 'RGB', 'CMYK'},
    'PNG': {'1', 'L', 'LA', 'I', 'I;16', 'P', 'RGB', 'RGBA'},
}


@dataclass(frozen=True)
class ImageEntry:
    """One image to caption.

    Args:
        image (str): Its path relative to the image folder, with ``/``; the
            record's ``image`` and ``id``.
        path (str): The file to open.
    """
    image: str
    path: str


def list_images(source: str, image_folder: Optional[str] = None
                ) -> tuple[str, list[ImageEntry]]:
    """The image folder and its images, sorted by path.

    Args:
        source (str): A folder (searched recursively for
            :data:`IMAGE_EXTENSIONS`) or a text file with one image path a
            line (blank lines and lines starting with ``#`` skipped,
            repeated paths taken once).
        image_folder (str, optional): For a list file: the folder its
            relative paths start from and record paths are relative to.
            Defaults to the list file's folder.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        ValueError: A listed path leaves the image folder, or a folder is
            given ``image_folder``.
    """
    root = Path(source)
    if root.is_dir():
        if image_folder is not None:
            raise ValueError(f'{source} is a folder: image_folder is only '
                             'for a list file')
        files = [path for path in root.rglob('*')
                 if path.suffix.lower() in IMAGE_EXTENSIONS and
                 path.is_file()]
        entries = [ImageEntry(path.relative_to(root).as_posix(), str(path))
                   for path in files]
        return str(root), sorted(entries, key=lambda entry: entry.image)
    if not root.is_file():
        raise FileNotFoundError(f'{source}: no such folder or list file')
    folder = Path(image_folder) if image_folder is not None else root.parent
    entries, seen = [], set()
    lines = root.read_text(encoding='utf-8').splitlines()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        path = folder / line
        relative = osp.relpath(osp.abspath(path), osp.abspath(folder))
        if relative == osp.pardir or relative.startswith(osp.pardir +
                                                         osp.sep):
            raise ValueError(f'{source}, line {number}: {line!r} is outside '
                             f'the image folder {str(folder)!r}')
        image = Path(relative).as_posix()
        if image not in seen:
            seen.add(image)
            entries.append(ImageEntry(image, str(path)))
    return str(folder), sorted(entries, key=lambda entry: entry.image)


def encode_image(path: str, max_side: int = DEFAULT_MAX_SIDE) -> str:
    """The image as a ``data:`` URL for a vision request.

    A JPEG or PNG that fits in ``max_side`` is sent byte for byte; a larger
    one is downscaled (aspect kept) and re-encoded in its own format; other
    formats are sent as PNG. Only the first frame of an animation is sent.
    """
    with Image.open(path) as image:
        source_format = image.format
        fits = max(image.size) <= max_side
        if source_format in KEPT_FORMATS and fits:
            data, out_format = Path(path).read_bytes(), source_format
        else:
            out_format = source_format if source_format in KEPT_FORMATS \
                else 'PNG'
            image.load()
            if not fits:
                image.thumbnail((max_side, max_side), Image.LANCZOS)
            if image.mode not in SAVABLE_MODES[out_format]:
                image = image.convert(
                    'RGBA' if out_format == 'PNG' and
                    image.has_transparency_data else 'RGB')
            buffer = io.BytesIO()
            image.save(buffer, out_format,
                       **({'quality': 95} if out_format == 'JPEG' else {}))
            data = buffer.getvalue()
    encoded = base64.b64encode(data).decode('ascii')
    return f'data:image/{out_format.lower()};base64,{encoded}'


def vision_messages(data_url: str, prompt: str = DEFAULT_PROMPT
                    ) -> list[dict]:
    """One user message: the image, then the prompt."""
    return [{'role': 'user', 'content': [
        {'type': 'image_url', 'image_url': {'url': data_url}},
        {'type': 'text', 'text': prompt}]}]


def check_style(style: str) -> None:
    """Fail unless ``style`` names a list of :data:`CAPTION_INSTRUCTIONS`."""
    if style not in CAPTION_INSTRUCTIONS:
        raise ValueError(f'style must be one of {sorted(CAPTION_INSTRUCTIONS)}'
                         f', got {style!r}')


def draw_instruction(image: str, seed: int, style: str = 'detailed') -> str:
    """The human instruction of ``image``'s record, from ``seed`` and
    ``image`` only."""
    check_style(style)
    return random.Random(f'{seed}:{image}').choice(
        CAPTION_INSTRUCTIONS[style])


def to_record(entry: ImageEntry, instruction: str, caption: str,
              source: Optional[str] = None) -> dict:
    """A stage-1 LLaVA record; with ``source``, a ``source`` key naming the
    captioner that wrote it."""
    record = dict(id=entry.image, image=entry.image, conversations=[
        {'from': HUMAN, 'value': f'{IMAGE_PLACEHOLDER}\n{instruction}'},
        {'from': GPT, 'value': caption}])
    if source is not None:
        record['source'] = source
    return record


def foreign_sources(records: Sequence[dict], source: str) -> dict:
    """How many of ``records`` another captioner than ``source`` wrote, by
    that captioner (``None``: a record that names none)."""
    return dict(Counter(record.get('source') for record in records
                        if record.get('source') != source))


@dataclass
class CaptionFailure:
    """An image that got no record.

    Args:
        image (str): Its path relative to the image folder.
        path (str): The file.
        code (str): A key of :data:`CAPTION_REASONS` or of
            :data:`mmllava.datasets.checks.REASONS`.
        message (str): What went wrong; names the file.
    """
    image: str
    path: str
    code: str
    message: str


@dataclass
class CaptionSummary:
    """What a run did.

    Args:
        written (int): Records written by this run.
        skipped (int): Images an earlier run had done.
        failures (list[CaptionFailure]): Images left without a record.
        usage (Usage, optional): The endpoint's request and token totals.
        batches (int): Batches a local model ran.
    """
    written: int = 0
    skipped: int = 0
    failures: list[CaptionFailure] = field(default_factory=list)
    usage: Optional[Usage] = None
    batches: int = 0

    def by_reason(self) -> dict[str, int]:
        """Failure counts per code, most frequent first."""
        return dict(Counter(failure.code
                            for failure in self.failures).most_common())


class _Recorder:
    """Writes records and failures into a summary, calling the hooks."""

    def __init__(self, writer: AppendOnlyJsonl, summary: CaptionSummary,
                 seed: int, style: str,
                 on_failure: Optional[Callable[[CaptionFailure], None]],
                 source: Optional[str] = None) -> None:
        # Checked before the first request is spent.
        check_style(style)
        self.writer = writer
        self.summary = summary
        self.seed = seed
        self.style = style
        self.on_failure = on_failure
        self.source = source

    def caption(self, entry: ImageEntry, caption: str) -> None:
        if getattr(caption, 'cut', False):
            # A local model's answer that reached max_new_tokens, as the
            # endpoint's finish_reason 'length'.
            self.fail(entry, 'caption_cut', f'{entry.path}: the caption '
                      'reached the token budget before its end (raise '
                      'max_new_tokens / --max-tokens)')
            return
        caption = caption.strip()
        if not caption:
            self.fail(entry, 'empty_caption',
                      f'{entry.path}: the caption is empty')
            return
        instruction = draw_instruction(entry.image, self.seed, self.style)
        self.writer.append(to_record(entry, instruction, caption,
                                     self.source))
        self.summary.written += 1

    def fail(self, entry: ImageEntry, code: str, message: str) -> None:
        failure = CaptionFailure(entry.image, entry.path, code, message)
        self.summary.failures.append(failure)
        if self.on_failure is not None:
            self.on_failure(failure)

    def readable(self, entry: ImageEntry,
                 problems: list[tuple[str, str]]) -> bool:
        """Whether :func:`check_image` found no ``problems``; reports the
        first one if it did."""
        for code, message in problems[:1]:
            self.fail(entry, code, message)
        return not problems


def _pending(entries: Sequence[ImageEntry], writer: AppendOnlyJsonl
             ) -> list[ImageEntry]:
    done = writer.done
    return [entry for entry in entries if entry.image not in done]


async def caption_with_client(
        entries: Sequence[ImageEntry],
        client: ChatClient,
        writer: AppendOnlyJsonl,
        prompt: str = DEFAULT_PROMPT,
        max_side: int = DEFAULT_MAX_SIDE,
        seed: int = 0,
        style: str = 'detailed',
        request_params: Optional[dict] = None,
        on_done: Optional[Callable[[], None]] = None,
        on_failure: Optional[Callable[[CaptionFailure], None]] = None,
        source: Optional[str] = None
) -> CaptionSummary:
    """Caption each image ``writer`` does not hold yet through an endpoint.

    Args:
        entries: The images.
        client: The chat client; ``client.max_concurrency`` images are
            worked on at once.
        writer: Where records go; its keys are the images already done.
        prompt: What the vision model is asked.
        max_side: Larger images are downscaled before sending.
        seed: Seeds each record's instruction.
        style: ``'detailed'`` or ``'brief'`` record instructions.
        request_params: Extra request fields (``temperature``,
            ``max_tokens``, ...).
        on_done: Called after each image, written or failed.
        on_failure: Called with each failure as it happens.
        source: Names the captioner in each record's ``source`` key.

    Raises:
        ChatError: The endpoint refuses every request (401, 403, 404).
    """
    pending = _pending(entries, writer)
    summary = CaptionSummary(skipped=len(entries) - len(pending),
                             usage=client.usage)
    recorder = _Recorder(writer, summary, seed, style, on_failure,
                         source)

    async def work_on(entry: ImageEntry) -> None:
        # Decoding and resizing take long enough to stall other requests,
        # so they run in threads.
        problems = await asyncio.to_thread(check_image, entry.path)
        if not recorder.readable(entry, problems):
            return
        data_url = await asyncio.to_thread(encode_image, entry.path,
                                           max_side)
        try:
            reply = await client.complete(vision_messages(data_url, prompt),
                                          f'image {entry.path}',
                                          **(request_params or {}))
        except ChatError as error:
            if error.status in FATAL_STATUSES:
                raise
            recorder.fail(entry, 'request_failed', str(error))
            return
        if reply.finish_reason == 'length':
            recorder.fail(entry, 'caption_cut', f'{entry.path}: the reply '
                          'was cut at max_tokens')
            return
        recorder.caption(entry, reply.content)

    await run_pool(pending, work_on, client.max_concurrency, on_done)
    return summary


def caption_with_model(
        entries: Sequence[ImageEntry],
        caption_batch: CaptionBatch,
        writer: AppendOnlyJsonl,
        batch_size: int = 8,
        prompt: str = LOCAL_PROMPT,
        seed: int = 0,
        style: str = 'detailed',
        on_done: Optional[Callable[[], None]] = None,
        on_failure: Optional[Callable[[CaptionFailure], None]] = None,
        source: Optional[str] = None
) -> CaptionSummary:
    """Caption each image ``writer`` does not hold yet with a local model,
    ``batch_size`` images per batch; a batch's records are written as soon
    as it is done.

    Args:
        entries: The images.
        caption_batch (CaptionBatch): The model, as a function of image
            paths and a prompt giving one caption per path
            (:func:`mmllava.apis.batch_captioner` makes one of a captioning
            LLaVA model).
        writer: Where records go; its keys are the images already done.
        batch_size: Images per batch.
        prompt: What the model is asked. Defaults to
            :data:`LOCAL_PROMPT`.
        seed: Seeds each record's instruction.
        style: ``'detailed'`` or ``'brief'`` record instructions.
        on_done: Called after each image, written or failed.
        on_failure: Called with each failure as it happens.
        source: Names the captioner in each record's ``source`` key.
    """
    if batch_size < 1:
        raise ValueError(f'batch_size must be at least 1, got {batch_size}')
    pending = _pending(entries, writer)
    summary = CaptionSummary(skipped=len(entries) - len(pending))
    recorder = _Recorder(writer, summary, seed, style, on_failure,
                         source)
    batch = []

    def run_batch() -> None:
        captions = caption_batch([entry.path for entry in batch], prompt)
        summary.batches += 1
        for entry, caption in zip(batch, captions):
            recorder.caption(entry, caption)
            if on_done is not None:
                on_done()
        batch.clear()

    for entry in pending:
        if recorder.readable(entry, check_image(entry.path)):
            batch.append(entry)
            if len(batch) == batch_size:
                run_batch()
        elif on_done is not None:
            on_done()
    if batch:
        run_batch()
    return summary
