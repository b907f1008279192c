"""The embedded demo: LLaVA's two training stages on CPU, with no download.

    python tools/run_demo.py

1. Generates the synthetic-scene dataset (data/demo) if it is absent.
2. Makes the demo weights (checkpoints/demo) if absent: the real LLaMA-format
   tokenizer from the mistral-common wheel, a small CLIP vision tower
   pretrained with CLIP's contrastive objective on the training scenes'
   captions, and a small Llama given a short language pretraining on the
   demo text. Each folder is written under a temporary name and moved into
   place when complete, so an interrupted run never leaves a half-made one.
3. Stage 1 (projector only, captions, `plain`) with tools/train.py.
4. Stage 2 (projector + LLM, instructions, `vicuna_v1`) with tools/train.py,
   starting from the stage-1 projector. Both stages measure on held-out
   scenes whether the model uses its images (ImageGainHook: val/image_gain)
   and save a checkpoint at the end of every epoch.
5. Draws both loss curves and the image gains to work_dirs/demo_loss.png.
6. Tests the trained model with tools/test.py on the held-out scenes:
   captioning (BLEU, METEOR, ROUGE-L, CIDEr) and short-answer questions
   (exact match per question kind), beside a blind baseline (the same model
   with every image blanked), prints one answer per question kind and draws
   a few answers beside their images to work_dirs/demo_predictions.png.

``--resume`` continues a run that was stopped: finished stages are kept, an
unfinished one resumes from its last checkpoint (the end of its last whole
epoch), and the test step runs again.
"""
import argparse
import json
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.config import Config

from mmllava.testing.demo.eval_files import write_eval_files
from mmllava.testing.demo.report import comparison_table, examples_per_kind
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset
from mmllava.testing.demo.tokenizer import write_llama_tokenizer
from mmllava.utils.plot import draw_curves, find_scalars_files, load_scalars
from mmllava.utils.plot_image_gain import plot_image_gain

REPO = Path(__file__).resolve().parents[1]
STAGE1_CONFIG = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
STAGE2_CONFIG = REPO / 'configs/llava/llava-tiny_demo_ft.py'
CAPTION_CONFIG = REPO / 'configs/llava/llava-tiny_demo_caption.py'
VQA_CONFIG = REPO / 'configs/llava/llava-tiny_demo_vqa.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs',
                        help='root of the two stages\' work dirs')
    parser.add_argument('--stage1-options', nargs='*', default=[],
                        help='--cfg-options for stage 1 (key=value)')
    parser.add_argument('--stage2-options', nargs='*', default=[],
                        help='--cfg-options for stage 2 (key=value)')
    parser.add_argument('--resume', action='store_true',
                        help='keep finished stages and resume an unfinished '
                        'one from its last checkpoint')
    return parser.parse_args()


@contextmanager
def building(folder: Path) -> Iterator[Path]:
    """Build ``folder`` under a temporary name and move it into place once
    complete: a run stopped half-way leaves no folder that a later run would
    take for finished (the temporary one is made anew)."""
    partial = folder.with_name(folder.name + '.partial')
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    yield partial
    partial.rename(folder)


def check_made_as_configured(data_dir: Path, vision_dir: Path,
                             demo: dict) -> None:
    """Stop, naming the folder, when data or a tower made by an earlier
    version of the demo (other sizes) would be reused."""
    made = json.loads((vision_dir / 'config.json').read_text())
    differing = {key: (made.get(key), value)
                 for key, value in demo['vision_config'].items()
                 if made.get(key) != value}
    scenes = json.loads((data_dir / 'scenes.json').read_text())
    num_train = sum(scene['split'] == 'train' for scene in scenes['scenes'])
    if num_train != demo['num_train']:
        differing['num_train'] = (num_train, demo['num_train'])
    if differing:
        found = ', '.join(f'{key} {old} (config: {new})'
                          for key, (old, new) in differing.items())
        raise SystemExit(
            f'{data_dir} and {vision_dir} were made with other settings '
            f'than the config\'s demo section: {found}. Delete '
            f'{data_dir} and {vision_dir.parent} to make them again.')


def prepare(demo: dict) -> None:
    """Make the demo's data and weights where they are missing."""
    # torch and transformers take seconds to import: not for --help.
    from mmllava.testing.demo.assets import (pretrain_language_model,
                                             pretrain_vision_encoder)
    data_dir = Path(demo['data_dir'])
    if not data_dir.is_dir():
        print(f'Generating the demo dataset in {data_dir} ...')
        with building(data_dir) as folder:
            generate_demo_dataset(
                str(folder), num_train=demo['num_train'],
                num_eval=demo['num_eval'], image_size=demo['image_size'])
            write_eval_files(str(folder / 'eval.json'), str(folder / 'eval'))
    tokenizer_dir = Path(demo['tokenizer_dir'])
    if not tokenizer_dir.is_dir():
        with building(tokenizer_dir) as folder:
            write_llama_tokenizer(str(folder))
    vision_dir = Path(demo['vision_encoder_dir'])
    if not vision_dir.is_dir():
        print('Pretraining the demo vision tower (CLIP contrastive) on the '
              f'training captions ({data_dir / "pretrain.json"}) -> '
              f'{vision_dir}')
        with building(vision_dir) as folder:
            pretrain_vision_encoder(
                demo['vision_config'], demo['image_processor'],
                str(data_dir / 'pretrain.json'), str(data_dir), str(folder),
                **demo['vision_pretrain'])
    check_made_as_configured(data_dir, vision_dir, demo)
    llm_dir = Path(demo['llm_dir'])
    if not llm_dir.is_dir():
        print('Pretraining the demo LLM on the demo text '
              f'({data_dir / "corpus.txt"}) -> {llm_dir}')
        with building(llm_dir) as folder:
            pretrain_language_model(
                demo['llm_config'], str(tokenizer_dir),
                str(data_dir / 'corpus.txt'), str(folder),
                **demo['lm_pretrain'])


def run_tool(tool: str, *args: str) -> None:
    command = [sys.executable, str(REPO / 'tools' / tool), *args]
    print('$ ' + ' '.join(command), flush=True)
    subprocess.run(command, check=True)


#: Written into a stage's work dir when its training has finished.
STAGE_DONE = 'demo_stage_done'


def train(config: Path, work_dir: Path, options: list[str],
          resume: bool) -> None:
    """Train one stage with tools/train.py.

    With ``resume``, a finished stage is kept as it is and an unfinished one
    continues from its last checkpoint; otherwise, or when it saved none,
    the stage starts afresh in an emptied work dir (so that its logs hold
    one run).
    """
    if resume and (work_dir / STAGE_DONE).is_file():
        print(f'{work_dir}: finished before, kept (--resume)')
        return
    extra = []
    if resume and (work_dir / 'last_checkpoint').is_file():
        print(f'{work_dir}: resuming from its last checkpoint')
        extra = ['--resume']
    elif work_dir.exists():
        shutil.rmtree(work_dir)
    options = ['--cfg-options', *options] if options else []
    run_tool('train.py', str(config), '--work-dir', str(work_dir), *extra,
             *options)
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / STAGE_DONE).write_text('')


def draw_training(stage_dirs: dict, out_file: Path) -> Path:
    """Both stages' loss curves beside each stage's image gain."""
    # A bare Figure on the Agg canvas leaves pyplot's global backend alone.
    figure = Figure(figsize=(16, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    loss_axes, *gain_axes = figure.subplots(1, 1 + len(stage_dirs))
    launches = {name: find_scalars_files(work_dir)
                for name, work_dir in stage_dirs.items()}
    draw_curves(loss_axes, list(launches.values()))
    for axes, (name, files) in zip(gain_axes, launches.items()):
        plot_image_gain(files, axes=axes, per_kind=name == 'stage 2')
        axes.set_title(f'{name}: held-out loss, shuffled or blank images '
                       'minus own', fontsize='medium')
    figure.tight_layout()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file)
    return out_file


def test(config: Path, checkpoint: Path, work_dir: Path,
         blind: bool) -> tuple[dict, Path]:
    """Run tools/test.py; return its metrics and its answer file."""
    answers = work_dir / ('answers.json' if config == CAPTION_CONFIG
                          else 'answers.jsonl')
    run_tool('test.py', str(config), str(checkpoint), '--work-dir',
             str(work_dir), '--out', str(answers),
             *(['--blind'] if blind else []))
    metrics = json.loads(answers.with_suffix('.metrics.json').read_text())
    return metrics, answers


def evaluate(demo: dict, checkpoint: Path, work_dir: Path) -> None:
    """Test the model and its blind baseline; print and draw the results."""
    # Imports mmllava's models (seconds): not for --help.
    from mmllava.testing.demo.predictions import draw_predictions, join_answers
    model, blind, answer_files = {}, {}, {}
    for config in (CAPTION_CONFIG, VQA_CONFIG):
        for is_blind, metrics in ((False, model), (True, blind)):
            name = config.stem.split('_')[-1] + ('_blind' if is_blind else '')
            result, answer_files[name] = test(config, checkpoint,
                                              work_dir / name, is_blind)
            metrics.update(result)
    eval_dir = Path(demo['data_dir'], 'eval')
    results, blind_results = (
        join_answers(str(answer_files[name]),
                     str(eval_dir / 'questions.jsonl'), demo['data_dir'])
        for name in ('vqa', 'vqa_blind'))
    print(f'\nHeld-out test set: {len(results)} questions about '
          f'{demo["num_eval"]} scenes, and their captions. "blind" is the '
          'same model with every image blanked (tools/test.py --blind).')
    print(comparison_table(model, blind))
    print('One answer per question kind:')
    print('\n'.join('  ' + line
                    for line in examples_per_kind(results, blind_results)))
    drawn = draw_predictions(results, str(work_dir.parent /
                                          'demo_predictions.png'))
    print(f'Answers beside their images: {drawn}')


def main() -> None:
    args = parse_args()
    demo = Config.fromfile(str(STAGE1_CONFIG)).demo
    prepare(demo)
    stage_dirs = {
        'stage 1': Path(args.work_dir, 'llava-tiny_demo_pretrain'),
        'stage 2': Path(args.work_dir, 'llava-tiny_demo_ft')}
    train(STAGE1_CONFIG, stage_dirs['stage 1'], args.stage1_options,
          args.resume)
    train(STAGE2_CONFIG, stage_dirs['stage 2'],
          [f'model.projector_pretrained={stage_dirs["stage 1"]}',
           *args.stage2_options], args.resume)
    figure = draw_training(stage_dirs, Path(args.work_dir, 'demo_loss.png'))
    for name, work_dir in stage_dirs.items():
        files = find_scalars_files(work_dir)
        _, losses = load_scalars(files)
        _, gains = load_scalars(files, 'val/image_gain')
        print(f'{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f} '
              f'({losses[-1] / losses[0]:.0%} of the first); held-out '
              f'image gain {gains[-1]:.3f} nats/token (loss with shuffled '
              'images minus loss with their own)')
    print(f'Loss curves and image gains: {figure}')

    evaluate(demo, stage_dirs['stage 2'], Path(args.work_dir, 'demo_test'))


if __name__ == '__main__':
    main()
