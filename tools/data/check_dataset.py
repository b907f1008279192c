"""Check a LLaVA json/jsonl data file and its images before training.

Example::

    python tools/data/check_dataset.py \\
        data/LLaVA-Finetune/llava_v1_5_mix665k.json \\
        --config configs/llava/llava-1.5-7b_ft.py --workers 8 --out report.json

Every bad record is reported with its index, id, a reason code and a message,
then every warning (a record training takes, but not quite as written), then a
count per reason. With ``--config``, the tokenizer, chat template,
``max_length`` and ``num_image_tokens`` come from the ``TokenizeConversation``
step of ``train_dataloader.dataset.pipeline`` (the image-token count derived
from the model's tower where the step types none, as in training) and the
image folder from the dataset's ``image_folder``; options given here override
them. Without a tokenizer the length checks are skipped.

Exit status: 0 when the file is clean (warnings allowed), 1 when problems were
found, 2 when the check could not run (no such file, a bad option or config).
"""
import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Mapping, Optional

from mmengine.config import Config
from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                           TextColumn, TimeRemainingColumn)

from mmllava.templates import get_template
from mmllava.utils.image_token_counts import fill_image_token_counts

if TYPE_CHECKING:
    from mmllava.datasets.checks import Report


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_file', metavar='DATA_JSON',
                        help='a LLaVA .json list or .jsonl file')
    parser.add_argument('--image-folder',
                        help='folder that "image" paths are relative to '
                        "(default: the config dataset's image_folder)")
    parser.add_argument('--config',
                        help='a training config: tokenizer, template, '
                        'max_length, num_image_tokens and image folder '
                        'come from its train_dataloader')
    parser.add_argument('--tokenizer',
                        help='tokenizer folder (overrides the config)')
    parser.add_argument('--template',
                        help='chat template name (overrides the config)')
    parser.add_argument('--max-length', type=int,
                        help='longest sequence (overrides the config)')
    parser.add_argument('--num-image-tokens', type=int,
                        help='feature rows of one image (overrides the '
                        'config)')
    parser.add_argument('--workers', type=int,
                        default=min(8, os.cpu_count() or 1),
                        help='image-checking threads (default: %(default)s)')
    parser.add_argument('--max-pixels', type=int,
                        help="larger images are reported (default: PIL's "
                        'MAX_IMAGE_PIXELS)')
    parser.add_argument('--min-side', type=int, default=2,
                        help='images with a shorter side are reported '
                        '(default: %(default)s)')
    parser.add_argument('--allow-outside-paths', action='store_true',
                        help='accept absolute image paths and paths with ..')
    parser.add_argument('--out', help='also write the report here as json')
    return parser.parse_args(argv)


def settings_from_config(config_file: str,
                         derive_image_tokens: bool = True) -> dict:
    """The dataset's image folder and its TokenizeConversation settings.

    Args:
        config_file (str): A training config.
        derive_image_tokens (bool): Give a step that truncates and types no
            ``num_image_tokens`` the count of the model's tower, as the
            tools do (:func:`fill_image_token_counts`, which needs the
            tower's ``config.json``). Defaults to True.
    """
    cfg = Config.fromfile(config_file)
    if derive_image_tokens:
        fill_image_token_counts(cfg)
    dataset = cfg.get('train_dataloader', {}).get('dataset')
    if dataset is None:
        raise ValueError(f'{config_file}: no train_dataloader.dataset')
    steps = [step for step in dataset.get('pipeline', [])
             if str(step.get('type')).split('.')[-1] ==
             'TokenizeConversation']
    if not steps:
        raise ValueError(f'{config_file}: no TokenizeConversation step in '
                         'train_dataloader.dataset.pipeline')
    step = steps[0]
    return dict(image_folder=dataset.get('image_folder'),
                tokenizer=step['tokenizer'], template=step['template'],
                max_length=step.get('max_length'),
                num_image_tokens=step.get('num_image_tokens'))


def resolve_settings(args: argparse.Namespace) -> dict:
    """Config values, overridden by the command line."""
    settings = dict(image_folder=None, tokenizer=None, template=None,
                    max_length=None, num_image_tokens=None)
    if args.config:
        settings.update(settings_from_config(
            args.config, derive_image_tokens=args.num_image_tokens is None))
    if args.tokenizer:
        settings['tokenizer'] = dict(type='PretrainedTokenizer',
                                     pretrained=args.tokenizer)
    for key in ('image_folder', 'template', 'max_length',
                'num_image_tokens'):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if settings['image_folder'] is None:
        raise ValueError('give --image-folder (or a --config whose dataset '
                         'has an image_folder)')
    if settings['max_length'] is not None and \
            isinstance(settings['num_image_tokens'], Mapping):
        raise ValueError(
            f'{args.config}: an AnyRes model counts each image from its '
            'size, which this check does not; give --num-image-tokens (one '
            'count for every image) to check lengths.')
    return settings


def print_report(report: 'Report') -> None:
    """Every problem, every warning, the count per reason, then what helps
    for a fault of the file as a whole."""
    from mmllava.datasets.checks import REASONS, WARNINGS
    for problem in report.problems:
        print(problem)
    for warning in report.warnings:
        print(warning)
    print(f'\n{report.data_file}: {report.num_records} records, '
          f'{report.num_bad_records} bad, {len(report.problems)} problems, '
          f'{len(report.warnings)} warnings')
    for code, count in report.summary().items():
        print(f'  {code:<24}{count:>8}  {REASONS[code]}')
    if report.warnings:
        print('warnings (not bad records: training takes them):')
        for code, count in report.warning_summary().items():
            print(f'  {code:<24}{count:>8}  {WARNINGS[code]}')
    hints = report.file_fault_hints()
    if hints:
        print('what helps:')
        for hint in hints:
            print(f'  {hint}')


def main(argv: Optional[list[str]] = None) -> int:
    """Check, print the report and return the exit status."""
    args = parse_args(argv)
    # mmllava's datasets and models load torch and transformers (seconds):
    # imported once the arguments are parsed, so that --help answers at once.
    from mmllava.datasets.checks import check_data_file
    from mmllava.models.tokenizer import build_tokenizer
    try:
        settings = resolve_settings(args)
        tokenizer = template = None
        if settings['tokenizer'] is not None:
            tokenizer = build_tokenizer(settings['tokenizer'])
            template = get_template(settings['template'])
    except (OSError, ValueError, KeyError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    progress = Progress(TextColumn('checking'), BarColumn(),
                        MofNCompleteColumn(), TimeRemainingColumn(),
                        transient=True, disable=not sys.stderr.isatty())
    with progress:
        task = progress.add_task('records', total=None)
        try:
            report = check_data_file(
                args.data_file, settings['image_folder'],
                tokenizer=tokenizer, template=template,
                max_length=settings['max_length'],
                num_image_tokens=settings['num_image_tokens'],
                workers=args.workers, max_pixels=args.max_pixels,
                min_side=args.min_side,
                allow_outside_paths=args.allow_outside_paths,
                on_record=lambda total: progress.update(
                    task, total=total, advance=1))
        except (OSError, ValueError) as error:
            print(f'error: {error}', file=sys.stderr)
            return 2
    print_report(report)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as file:
            json.dump(dict(report.to_dict(), image_folder=settings[
                'image_folder'], max_length=settings['max_length'],
                num_image_tokens=settings['num_image_tokens'],
                template=settings['template']), file, indent=2)
        print(f'report written to {args.out}')
    return 0 if report.clean else 1


if __name__ == '__main__':
    sys.exit(main())
