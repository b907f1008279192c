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
6. Answers held-out questions with the trained model, prints the accuracy and
   draws a few answers beside their images to work_dirs/demo_predictions.png.
"""
import argparse
import subprocess
import sys
from pathlib import Path

from mmengine.config import Config

from mmllava.demo.assets import (pretrain_language_model,
                                 save_random_vision_encoder)
from mmllava.demo.predictions import draw_predictions, predict_eval_set
from mmllava.demo.synthetic_scenes import generate_demo_dataset
from mmllava.demo.tokenizer import write_llama_tokenizer
from mmllava.utils.plot import (find_scalars_file, load_scalars,
                                plot_loss_curves)

REPO = Path(__file__).resolve().parents[1]
STAGE1_CONFIG = REPO / 'configs/llava/llava-tiny_demo_pretrain.py'
STAGE2_CONFIG = REPO / 'configs/llava/llava-tiny_demo_ft.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs',
                        help='root of the two stages\' work dirs')
    parser.add_argument('--stage1-options', nargs='*', default=[],
                        help='--cfg-options for stage 1 (key=value)')
    parser.add_argument('--stage2-options', nargs='*', default=[],
                        help='--cfg-options for stage 2 (key=value)')
    parser.add_argument('--num-eval', type=int, default=48,
                        help='held-out questions to answer at the end')
    return parser.parse_args()


def prepare(demo: dict) -> None:
    """Make the demo's data and weights where they are missing."""
    data_dir = Path(demo['data_dir'])
    if not (data_dir / 'instruct.json').is_file():
        print(f'Generating the demo dataset in {data_dir} ...')
        generate_demo_dataset(
            str(data_dir), num_train=demo['num_train'],
            num_eval=demo['num_eval'], image_size=demo['image_size'])
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


def train(config: Path, work_dir: Path, options: list[str]) -> None:
    command = [sys.executable, str(REPO / 'tools/train.py'), str(config),
               '--work-dir', str(work_dir)]
    if options:
        command += ['--cfg-options', *options]
    print('$ ' + ' '.join(command), flush=True)
    subprocess.run(command, check=True)


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

    results = predict_eval_set(
        Config.fromfile(str(STAGE2_CONFIG)), str(stage2_dir),
        str(Path(demo['data_dir'], 'eval.json')), demo['data_dir'],
        max_samples=args.num_eval)
    accuracy = sum(result['correct'] for result in results) / len(results)
    drawn = draw_predictions(
        results, str(Path(args.work_dir, 'demo_predictions.png')))
    print(f'Held-out short answers: {accuracy:.0%} exact match on '
          f'{len(results)} questions; examples drawn to {drawn}')


if __name__ == '__main__':
    main()
