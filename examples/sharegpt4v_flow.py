"""ShareGPT4V end to end at toy scale: detailed captions from an endpoint,
a captioner trained on them, the captioner's captions for pre-training, then
instruction tuning. Minutes on a CPU, no network, no key.

Run from the repository root:

    python examples/sharegpt4v_flow.py [--work-dir work_dirs/sharegpt4v_flow]

The three ShareGPT4V recipes run as they are written, with the demo's small
tower, LLM and tokenizer in place of CLIP ViT-L and Vicuna-7B
(:func:`mmllava.testing.small_parts.with_small_parts`), on generated scenes
(two sets: ``seed``, the images a strong model captions, and ``web``, the
many more images the captioner captions):

0. LLaVA-1.5 stage 1 (``llava-1.5-7b_pretrain.py``) on the web scenes'
   short captions: the projector both ShareGPT4V recipes start from.
1. Detailed captions of the seed scenes from an OpenAI-compatible endpoint
   (``tools/data/caption_images.py``): by default a local replay server
   standing in for GPT-4V, which describes each scene it receives from what
   was drawn in it; ``--base-url``/``--model`` name a real one (its key in
   ``$OPENAI_API_KEY``).
2. The captioner (``share-captioner_ft.py``) trained on them.
3. The captioner captions the folder of web scenes
   (``caption_images.py --local-model``).
4. ShareGPT4V pre-training (``sharegpt4v-7b_pretrain.py``) on its captions:
   the tower's latter half, the projector and the LLM learn.
5. ShareGPT4V instruction tuning (``sharegpt4v-7b_ft.py``) on the web
   scenes' instruction mix, its detailed descriptions replaced by the seed
   captions, from the whole pre-trained model.

Everything goes under ``--work-dir``, laid out as the recipes name it
relative to the working directory (``configs/``, ``data/``,
``checkpoints/demo/``, ``work_dirs/<recipe>``). The tools run there, so each
recipe's ``model.projector_pretrained`` and ``load_from`` find the stage
before it unchanged; the commands set only the data and the toy-scale
schedule. The parts are the demo's trained ones (``checkpoints/demo``, made
by ``tools/run_demo.py``) when present, otherwise small random ones made on
the fly (``--random-parts`` forces these). Each tool's output goes to
``logs/<step>.log``; the console shows the commands and what each step made.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import torch
from mmengine.config import Config
from transformers import AutoConfig, AutoModelForCausalLM

from mmllava.testing.demo.assets import save_random_vision_encoder
from mmllava.testing.demo.scene_text import detailed_description
from mmllava.testing.demo.scenes import (COLOURS, SHAPES, Scene,
                                         SceneObject, grid_cell)
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset
from mmllava.testing.demo.tokenizer import write_llama_tokenizer
from mmllava.testing.replay_server import ReplayServer, Reply, Status
from mmllava.testing.small_parts import demo_parts, with_small_parts
from mmllava.utils.plot import find_scalars_files, load_scalars

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs/llava'
TRAIN = REPO / 'tools/train.py'
CAPTION = REPO / 'tools/data/caption_images.py'
#: The recipes the flow runs, written on the small parts into configs/.
RECIPES = ('llava-1.5-7b_pretrain', 'share-captioner_ft',
           'sharegpt4v-7b_pretrain', 'sharegpt4v-7b_ft',
           'llava-1.5-7b_caption')
PART_FOLDERS = ('tokenizer', 'vision_encoder', 'llm')
SHAPE_NAME = re.compile(rf'\b({"|".join(COLOURS)}) ({"|".join(SHAPES)})\b')
#: The recipes' learning rates (1e-3 and 2e-5 at global batches of 128-256)
#: suit CLIP ViT-L and a 7B LLM; the toy parts learn in few steps at this one
#: (as llava-tiny_demo_ft.py).
TOY_LR = 1e-3
TOY_BATCH = 8
#: The captioner: more, smaller steps on its few captions, at a rate that
#: teaches it within them to end a caption (the caption step fails one that
#: runs to its token limit).
CAPTIONER_BATCH = 4
CAPTIONER_LR = 3e-3
#: The caption step stops a caption here; the scenes' descriptions are
#: shorter.
MAX_CAPTION_TOKENS = 160


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/sharegpt4v_flow',
                        help='where everything goes (default: %(default)s)')
    parser.add_argument('--seed-images', type=int, default=16,
                        help='scenes the endpoint captions (default: '
                        '%(default)s)')
    parser.add_argument('--web-images', type=int, default=32,
                        help='scenes the captioner captions (default: '
                        '%(default)s)')
    parser.add_argument('--captioner-epochs', type=int, default=20,
                        help="epochs of the captioner's training: it must "
                        'learn to end its captions (default: %(default)s)')
    parser.add_argument('--random-parts', action='store_true',
                        help="small random parts even where the demo's "
                        'trained ones are present')
    parser.add_argument('--base-url',
                        help='a real endpoint for step 1 (default: a local '
                        'replay server)')
    parser.add_argument('--model', default='replay',
                        help='model name at --base-url')
    return parser.parse_args()


class Flow:
    """Runs the tools in ``root`` and reports each step in a line or two.

    Args:
        root (Path): The work dir; the tools' working directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        self.steps = 0

    def run(self, name: str, tool: Path, *args: str,
            allowed: tuple = (0, )) -> tuple[str, float]:
        """Run a repo tool in the work dir, its output to ``logs/``;
        stop the flow, showing the log's end, when it fails. Returns the
        output and the seconds it took."""
        log = self.logs / f'{self.steps}_{name}.log'
        self.steps += 1
        print(f'$ python {tool.relative_to(REPO)} {" ".join(args)}',
              flush=True)
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(tool), *args],
                                cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                env=dict(os.environ, PYTHONUNBUFFERED='1'))
        log.write_text(result.stdout)
        if result.returncode not in allowed:
            sys.exit(f'{tool.name} exited {result.returncode}; the end of '
                     f'{log}:\n{result.stdout[-3000:]}')
        return result.stdout, time.monotonic() - start

    def train(self, recipe: str, data_file: str, image_folder: str,
              *options: str, batch_size: int = TOY_BATCH,
              lr: float = TOY_LR) -> None:
        """Train ``configs/<recipe>.py`` into ``work_dirs/<recipe>`` on a data
        file, at the toy scale, and report its losses and trainable parts."""
        output, seconds = self.run(
            recipe, TRAIN, f'configs/{recipe}.py', '--cfg-options',
            f'train_dataloader.dataset.data_file={data_file}',
            f'train_dataloader.dataset.image_folder={image_folder}',
            f'train_dataloader.batch_size={batch_size}',
            f'optim_wrapper.optimizer.lr={lr}',
            'default_hooks.logger.interval=1', *options)
        _, losses = load_scalars(
            find_scalars_files(self.root / 'work_dirs' / recipe))
        trainable = re.search(r'trainable parameters: (.*)', output)
        print(f'  {len(losses)} iterations in {seconds:.0f} s, loss '
              f'{losses[0]:.2f} -> {losses[-1]:.2f}; trainable '
              f'{trainable.group(1) if trainable else "?"}', flush=True)


def make_parts(root: Path, demo: Config, random_parts: bool) -> str:
    """``root/checkpoints/demo``: a link to the demo's trained parts, or small
    random ones of the sizes the demo config's ``demo`` section gives.
    Returns which."""
    folder = root / 'checkpoints/demo'
    trained = Path('checkpoints/demo').resolve()
    folder.parent.mkdir(parents=True)
    if not random_parts and all((trained / name).is_dir()
                                for name in PART_FOLDERS):
        folder.symlink_to(trained, target_is_directory=True)
        return f"the demo's trained parts ({trained})"
    write_llama_tokenizer(str(folder / 'tokenizer'))
    save_random_vision_encoder(demo.vision_config, demo.image_processor,
                               str(folder / 'vision_encoder'))
    # transformers' own initialisation: a captioner learns from it in a few
    # dozen steps (a wide random head would start at a loss of ~100).
    llm_config = dict(demo.llm_config)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.for_model(
        llm_config.pop('model_type'), **llm_config)).save_pretrained(
            folder / 'llm')
    return f'small random parts made in {folder}'


def write_configs(root: Path) -> None:
    """Each recipe on the demo's small parts, as ``root/configs/<name>.py``."""
    (root / 'configs').mkdir(exist_ok=True)
    for name in RECIPES:
        recipe = Config.fromfile(str(CONFIGS / f'{name}.py'))
        with_small_parts(recipe).dump(str(root / 'configs' / f'{name}.py'))


def load_scenes(data_dir: Path) -> dict[str, Scene]:
    """The scenes ``generate_demo_dataset`` drew, by image path relative to
    ``data_dir``."""
    written = json.loads((data_dir / 'scenes.json').read_text())
    side = written['image_size']
    scenes = {}
    for scene in written['scenes']:
        objects = tuple(
            SceneObject(obj['shape'], obj['colour'], obj['size'],
                        tuple(obj['box']), *grid_cell(obj['box'], side))
            for obj in scene['objects'])
        scenes[scene['image']] = Scene(scene['id'], scene['split'],
                                       scene['image'], side, objects)
    return scenes


class SceneDescriber:
    """The replay server's answers: each image it receives described in
    detail from the scene drawn in it, as a strong vision model would.

    Images up to the tool's ``--max-side`` travel byte for byte, so the
    image file's hash names its scene.

    Args:
        data_dir (Path): A ``generate_demo_dataset`` folder.
    """

    def __init__(self, data_dir: Path) -> None:
        self.descriptions = {
            hashlib.sha256((data_dir / path).read_bytes()).hexdigest():
            detailed_description(scene)
            for path, scene in load_scenes(data_dir).items()
        }

    def __call__(self, body: dict, index: int) -> Reply | Status:
        parts = body['messages'][-1]['content']
        url = next(part['image_url']['url'] for part in parts
                   if part['type'] == 'image_url')
        image = base64.b64decode(url.split(',', 1)[1])
        description = self.descriptions.get(
            hashlib.sha256(image).hexdigest())
        return Status(400) if description is None else Reply(description)


def named_shapes(text: str) -> set[str]:
    """The shapes a text names by colour and shape (``'red circle'``)."""
    return {' '.join(match) for match in SHAPE_NAME.findall(text)}


def report_captions(out: Path, scenes: dict[str, Scene]) -> list[dict]:
    """Say how many images got a caption and how many of the drawn shapes
    the captions name; show one. Stops the flow when no image got one.

    Args:
        out (Path): The records ``caption_images.py`` wrote.
        scenes (dict): The scenes by image path relative to their data
            folder; the records' paths are relative to its ``images/``.
    """
    records = json.loads(out.read_text()) if out.exists() else []
    failures = out.with_suffix('.failures.jsonl')
    reasons = [json.loads(line)['code'] for line in
               failures.read_text().splitlines()] if failures.exists() else []
    if not records:
        sys.exit(f'No image got a caption (failures: {reasons}); see {out}.')
    drawn = right = wrong = 0
    for record in records:
        scene = scenes[f'images/{record["image"]}']
        shapes = {obj.name for obj in scene.objects}
        named = named_shapes(record['conversations'][1]['value'])
        drawn += len(shapes)
        right += len(named & shapes)
        wrong += len(named - shapes)
    failed = f' ({", ".join(sorted(set(reasons)))})' if reasons else ''
    print(f'  {len(records)} records in {out.relative_to(out.parents[1])}, '
          f'{len(reasons)} images without one{failed}; the captions name '
          f'{right} of the {drawn} drawn shapes (colour and shape) and '
          f'{wrong} not drawn\n  {records[0]["image"]}: '
          f'{records[0]["conversations"][1]["value"]}', flush=True)
    return records


def rebased(records: list[dict], folder: str) -> list[dict]:
    """Records whose images (and ids) are relative to ``folder``'s parent."""
    return [dict(record, id=folder + record['id'],
                 **({'image': folder + record['image']}
                    if 'image' in record else {}))
            for record in records]


def write_mix(data: Path, seed_captions: list[dict]) -> None:
    """The instruction mix: the web scenes' records with their detailed
    descriptions replaced by the seed captions (ShareGPT4V's 665K mix with
    its 23K caption records replaced by GPT-4V ones), shuffled, as
    ``data/mix.json``; its image paths are relative to ``data``."""
    instructions = json.loads((data / 'web/instruct.json').read_text())
    kept = [record for record in instructions
            if not record['id'].endswith('_detail')]
    mix = rebased(kept, 'web/') + rebased(seed_captions, 'seed/images/')
    random.Random(0).shuffle(mix)
    (data / 'mix.json').write_text(json.dumps(mix, indent=1))
    print(f'  {len(mix)} records in data/mix.json: '
          f'{len(instructions) - len(kept)} detailed descriptions of the web '
          f'set replaced by {len(seed_captions)} seed captions', flush=True)


def caption_seed_set(flow: Flow, endpoint: Optional[str],
                     model: str) -> list[dict]:
    """Step 1: the seed scenes captioned by the endpoint."""
    seed = flow.root / 'data/seed'
    server = nullcontext() if endpoint else ReplayServer(SceneDescriber(seed))
    with server:
        flow.run('seed_captions', CAPTION, 'data/seed/images', '--out',
                 'data/seed_captions.json', '--base-url',
                 endpoint or server.base_url, '--model', model,
                 '--concurrency', '4', '--max-tokens', '1024',
                 '--no-progress', allowed=(0, 1))
    return report_captions(flow.root / 'data/seed_captions.json',
                           load_scenes(seed))


def main() -> None:
    """Make the data and parts, then run the five steps."""
    args = parse_args()
    root = Path(args.work_dir).resolve()
    data = root / 'data'
    if root.exists() and any(root.iterdir()):
        sys.exit(f'{root} holds an earlier run; give another --work-dir or '
                 'remove it.')
    root.mkdir(parents=True, exist_ok=True)
    print(f'Working in {root} (the tools run there; tools/ is the '
          "repository's)")
    demo = demo_parts().demo
    for name, number, seed in (('seed', args.seed_images, 1),
                               ('web', args.web_images, 2)):
        generate_demo_dataset(data / name, num_train=number, num_eval=0,
                              image_size=demo.image_size, seed=seed)
    print(f'  scenes: {args.seed_images} in data/seed, {args.web_images} in '
          'data/web')
    print(f'  parts: {make_parts(root, demo, args.random_parts)}')
    write_configs(root)
    print(f'  configs/: {", ".join(RECIPES)} on the small parts', flush=True)
    flow = Flow(root)

    print('\n0. LLaVA-1.5 stage 1: the projector, on short captions')
    flow.train('llava-1.5-7b_pretrain', 'data/web/pretrain.json', 'data/web',
               'train_cfg.max_epochs=2', 'param_scheduler.1.end=2')

    print('\n1. Detailed captions of the seed set from the endpoint')
    seed_captions = caption_seed_set(flow, args.base_url, args.model)

    print('\n2. The captioner, trained on them')
    epochs = args.captioner_epochs
    flow.train('share-captioner_ft', 'data/seed_captions.json',
               'data/seed/images', f'train_cfg.max_epochs={epochs}',
               f'param_scheduler.1.end={epochs}',
               f'train_dataloader.sampler.batch_size={CAPTIONER_BATCH}',
               batch_size=CAPTIONER_BATCH, lr=CAPTIONER_LR)

    print('\n3. The captioner captions the web set')
    flow.run('web_captions', CAPTION, 'data/web/images', '--out',
             'data/web_captions.json', '--local-model',
             'configs/llava-1.5-7b_caption.py', '--checkpoint',
             'work_dirs/share-captioner_ft', '--batch-size', '16',
             '--max-tokens', str(MAX_CAPTION_TOKENS), '--no-progress',
             allowed=(0, 1))
    report_captions(data / 'web_captions.json', load_scenes(data / 'web'))

    print('\n4. ShareGPT4V pre-training on the captioner\'s captions')
    flow.train('sharegpt4v-7b_pretrain', 'data/web_captions.json',
               'data/web/images')

    print('\n5. ShareGPT4V instruction tuning on the mix')
    write_mix(data, seed_captions)
    flow.train('sharegpt4v-7b_ft', 'data/mix.json', 'data',
               f'train_dataloader.sampler.batch_size={TOY_BATCH}')
    print(f'\nDone: the ShareGPT4V model is in {root}/work_dirs/'
          "sharegpt4v-7b_ft; each tool's output in logs/.")


if __name__ == '__main__':
    main()
