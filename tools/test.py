"""Evaluate a LLaVA model on a test set with an mmengine Runner.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--blind] [--resume] [--vision-tower TOWER]
        [--cfg-options key=value ...] [--allow-partial-load]
        [--launcher none|pytorch|slurm|mpi]

CHECKPOINT is an mmllava checkpoint, a DeepSpeed run's checkpoint folder
(consolidated in memory), a training work dir (its latest checkpoint) or
mmpretrain's LLaVA file (converted into the work dir first; its tower from
``--vision-tower``).
Generates an answer for every test sample, prints the metrics and writes
every answer to ``--out`` (default: in the work dir) in the benchmark's
format: LLaVA's answer jsonl, or COCO caption results for captioning. The
metrics are also saved beside it as json. ``--blind`` answers with every
image blanked: the language-prior baseline.

Predictions are saved batch by batch in WORK_DIR/predictions (one file per
process); ``--resume`` continues an interrupted run from them.

The arguments are parsed before mmllava, mmengine's runner and transformers
are imported (seconds), so that ``--help`` answers at once; ``main`` imports
them.
"""
import argparse
import json
import os.path as osp
from pathlib import Path

from mmllava.utils.runner_args import add_runner_args, parse_runner_args


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a LLaVA model')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', help='checkpoint file, a work dir (its latest), or '
        'mmpretrain\'s LLaVA file')
    parser.add_argument(
        '--vision-tower',
        help='with mmpretrain\'s LLaVA file (which holds no tower): a '
        'transformers CLIP folder or an mmpretrain CLIP ViT checkpoint '
        '(default: the tower the config names)')
    parser.add_argument(
        '--out', help='answer file (default: WORK_DIR/<config>_answers'
        '.jsonl, or .json of COCO caption results for captioning)')
    parser.add_argument(
        '--blind', action='store_true',
        help='replace every image by a blank one: a baseline of what the '
        'model answers from the text alone')
    parser.add_argument(
        '--resume', action='store_true',
        help='reuse the predictions an interrupted run saved in '
        'WORK_DIR/predictions and generate only the rest (the checkpoint, '
        'data and number of processes must be the same); without it, '
        'earlier predictions there are moved aside to *.previous')
    add_runner_args(parser, 'where logs and results go',
                    'test_dataloader.batch_size=1')
    return parse_runner_args(parser)


def answer_writer(cfg, out_file: str) -> dict:
    """The evaluator entry that saves every answer."""
    task = cfg.get('inference', {}).get('task')
    file_format = 'coco_captions' if task == 'caption' else 'llava_jsonl'
    return dict(type='AnswerFileWriter', out_file=out_file,
                file_format=file_format,
                model_id=osp.splitext(osp.basename(cfg.filename))[0])


def merge_args(cfg, args: argparse.Namespace):
    """``cfg`` (an mmengine ``Config``) set up for this test run."""
    from mmllava.converters.layouts import runner_checkpoint
    from mmllava.datasets.transforms import blind_pipeline
    from mmllava.utils.launch import adapt_to_machine, apply_runner_args
    cfg = apply_runner_args(cfg, args)
    name = osp.splitext(osp.basename(args.config))[0]
    # mmpretrain's LLaVA file is converted into the work dir first.
    cfg.load_from = runner_checkpoint(cfg, args.checkpoint, cfg.work_dir,
                                      args.vision_tower)
    if args.blind:
        dataset = cfg.test_dataloader.dataset
        dataset.pipeline = blind_pipeline(
            dataset.pipeline, cfg.get('image_mean', (0.5, 0.5, 0.5)))
    # The checkpoint holds the projector; a stage-1 path is not needed.
    cfg.model.pop('projector_pretrained', None)
    task = cfg.get('inference', {}).get('task')
    suffix = '.json' if task == 'caption' else '.jsonl'
    cfg.answer_file = args.out or osp.join(cfg.work_dir,
                                           f'{name}_answers{suffix}')
    evaluators = cfg.test_evaluator if isinstance(
        cfg.test_evaluator, list) else [cfg.test_evaluator]
    cfg.test_evaluator = [*evaluators, answer_writer(cfg, cfg.answer_file)]
    cfg.test_cfg = dict(cfg.get('test_cfg') or {}, type='ResumableTestLoop',
                        resume=args.resume)
    # Generation on CPU: packed linear weights and the lean decoding loop.
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(hook.get('type') == 'CPUGenerationHook' for hook in hooks):
        cfg.custom_hooks = [*hooks, dict(type='CPUGenerationHook')]
    return adapt_to_machine(cfg)


def main() -> None:
    args = parse_args()
    from mmengine.config import Config
    from mmengine.dist import is_main_process
    from mmengine.registry import RUNNERS

    from mmllava.setup_env import register_all_modules
    from mmllava.utils.launch import close_process_groups
    register_all_modules()
    cfg = merge_args(Config.fromfile(args.config), args)
    # The config's runner_type (mmllava's quiet Runner), mmengine's Runner
    # where it names none.
    runner = RUNNERS.build(cfg)
    metrics = runner.test()
    if is_main_process():
        metrics_file = Path(cfg.answer_file).with_suffix('.metrics.json')
        metrics_file.write_text(json.dumps(metrics, indent=1) + '\n')
        print('\n'.join(f'{key}: {value:.2f}'
                        if isinstance(value, float) else f'{key}: {value}'
                        for key, value in metrics.items()))
        print(f'Answers: {cfg.answer_file}\nMetrics: {metrics_file}')
    close_process_groups()


if __name__ == '__main__':
    main()
