"""The embedded demo: LLaVA's two training stages on CPU, with no download.

    python tools/run_demo.py

1. Generates the synthetic-scene dataset (data/demo) if it is absent.
2. Makes the demo weights (checkpoints/demo) if absent: the real LLaMA-format
   tokenizer from the mistral-common wheel, a random-init CLIP vision tower,
   and a small Llama given a short language pretraining on the demo text.
3. Stage 1 (projector only, captions, `plain`) with tools/train.py.
4. Stage 2 (projector + LLM, instructions, `vicuna_v1`) with tools/train.py,
   starting from the stage-1 projector.
5. Draws both loss curves to work_dirs/demo_loss.png and prints the losses.
6. Tests the trained model with tools/test.py on the held-out scenes:
   captioning (BLEU, METEOR, ROUGE-L, CIDEr) and short-answer questions
   (exact match per question kind), beside a blind baseline (the same model
   with every image blanked), prints one answer per question kind and draws
   a few answers beside their images to work_dirs/demo_predictions.png.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

from mmengine.config import Config

from mmllava.demo.assets import (pretrain_language_model,
                                 save_random_vision_encoder)
from mmllava.demo.eval_files import write_eval_files
from mmllava.demo.predictions import draw_predictions, join_answers
from mmllava.demo.report import comparison_table, examples_per_kind
from mmllava.demo.synthetic_scenes import generate_demo_dataset
from mmllava.demo.tokenizer import write_llama_tokenizer
from mmllava.utils.plot import (find_scalars_file, load_scalars,
                                plot_loss_curves)

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
    return parser.parse_args()


def prepare(demo: dict) -> None:
    """Make the demo's data and weights where they are missing."""
    data_dir = Path(demo['data_dir'])
    if not (data_dir / 'instruct.json').is_file():
        print(f'Generating the demo dataset in {data_dir} ...')
        generate_demo_dataset(
            str(data_dir), num_train=demo['num_train'],
            num_eval=demo['num_eval'], image_size=demo['image_size'])
    if not (data_dir / 'eval/questions.jsonl').is_file():
        write_eval_files(str(data_dir / 'eval.json'), str(data_dir / 'eval'))
    if not Path(demo['tokenizer_dir'], 'tokenizer_config.json').is_file():
        write_llama_tokenizer(demo['tokenizer_dir'])
    if not Path(demo['vision_encoder_dir'], 'config.json').is_file():
        print('Saving a random-init CLIP vision tower to '
              f'{demo["vision_encoder_dir"]}')
        save_random_vision_encoder(demo['vision_config'],
                                   demo['image_processor'],
                                   demo['vision_encoder_dir'])
    if not Path(demo['llm_dir'], 'config.json').is_file():
        print('Pretraining the demo LLM on the demo text '
              f'({data_dir / "corpus.txt"}) -> {demo["llm_dir"]}')
        pretrain_language_model(
            demo['llm_config'], demo['tokenizer_dir'],
            str(data_dir / 'corpus.txt'), demo['llm_dir'],
            **demo['lm_pretrain'])


def run_tool(tool: str, *args: str) -> None:
    command = [sys.executable, str(REPO / 'tools' / tool), *args]
    print('$ ' + ' '.join(command), flush=True)
    subprocess.run(command, check=True)


def train(config: Path, work_dir: Path, options: list[str]) -> None:
    options = ['--cfg-options', *options] if options else []
    run_tool('train.py', str(config), '--work-dir', str(work_dir), *options)


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
    stage1_dir = Path(args.work_dir, 'llava-tiny_demo_pretrain')
    stage2_dir = Path(args.work_dir, 'llava-tiny_demo_ft')
    train(STAGE1_CONFIG, stage1_dir, args.stage1_options)
    train(STAGE2_CONFIG, stage2_dir,
          [f'model.projector_pretrained={stage1_dir}', *args.stage2_options])
    scalar_files = [str(find_scalars_file(str(work_dir)))
                    for work_dir in (stage1_dir, stage2_dir)]
    figure = plot_loss_curves(scalar_files,
                              str(Path(args.work_dir, 'demo_loss.png')))
    for name, scalar_file in zip(('stage 1', 'stage 2'), scalar_files):
        _, losses = load_scalars(scalar_file)
        print(f'{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f} '
              f'({losses[-1] / losses[0]:.0%} of the first)')
    print(f'Loss curves: {figure}')

    evaluate(demo, stage2_dir, Path(args.work_dir, 'demo_test'))


if __name__ == '__main__':
    main()
