"""How fast the demo model learns each question kind: stage 2 in a plain
loop, with greedy exact match per kind on held-out questions as it goes.

    python tools/analysis/demo_learning_curves.py [--data single]
        [--steps 1000] [--batch-size 16] [--lr 1e-3] [--eval-every 250]
        [--num-questions 400] [--llm-config '{"hidden_size": 256}']

Needs the demo's data and weights (``python tools/run_demo.py`` makes them);
starts from its stage-1 projector when ``work_dirs/llava-tiny_demo_pretrain``
holds one. ``--data`` is ``demo`` (``data/demo/instruct.json``), a variant of
``mmllava/testing/demo/stage2_variants.py`` (``single``: one question per
record; ``text``: the caption written in the prompt in place of the image,
and the held-out questions asked the same way), or a LLaVA json file.
``--llm-config`` trains a random-init LLM of the demo's shape with these
changes instead of the demo's pretrained one.

Prints one row per evaluation (questions seen, seconds of training, loss,
exact match overall and per kind) and writes the rows to
``OUT/curves.json`` and a plot of them to ``OUT/curves.png``.
"""
import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Optional

from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
DEMO_STAGE2 = REPO / 'configs/llava/llava-tiny_demo_ft.py'
STAGE1_DIR = 'work_dirs/llava-tiny_demo_pretrain'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data', default='demo',
                        help='demo, single, text or a LLaVA json file')
    parser.add_argument('--steps', type=int, default=1000)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--warmup', type=int, default=30,
                        help='linear warmup steps before the cosine decay')
    parser.add_argument('--eval-every', type=int, default=250)
    parser.add_argument('--num-questions', type=int, default=400,
                        help='held-out questions answered per evaluation')
    parser.add_argument('--llm-config', type=json.loads,
                        help='JSON: a random-init LLM, the demo\'s config '
                        'with these keys changed')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/demo_learning_curves')
    return parser.parse_args()


def data_file(cfg: Config, data: str, out_dir: Path) -> str:
    """The training records for ``data``, written first for a variant."""
    from mmllava.testing.demo.stage2_variants import VARIANTS, write_variant
    if data == 'demo':
        return cfg.train_dataloader.dataset.data_file
    if data in VARIANTS:
        # The scenes of the data folder as made (a test makes fewer).
        made = json.loads(Path(cfg.demo.data_dir, 'scenes.json').read_text())
        num_train = sum(scene['split'] == 'train' for scene in made['scenes'])
        out_file = out_dir / f'{data}.json'
        number = write_variant(data, str(out_file), num_train,
                               made['image_size'], made['seed'])
        print(f'{number} records of variant {data!r} -> {out_file}')
        return str(out_file)
    if not Path(data).is_file():
        raise SystemExit(f'--data {data!r} is neither demo, a variant '
                         f'({", ".join(sorted(VARIANTS))}) nor a file.')
    return data


def held_out_questions(cfg: Config, number: int, as_text: bool) -> list:
    """The first ``number`` short-answer records of ``eval.json``, each as
    ``(conversation, image or None, kind, answer)``."""
    from mmllava.constants import IMAGE_PLACEHOLDER
    from mmllava.testing.demo.stage2_variants import text_prompt
    data_dir = Path(cfg.demo.data_dir)
    records = json.loads((data_dir / 'eval.json').read_text())
    captions = {record['image']: record['answer'] for record in records
                if record['type'] == 'caption'}
    questions = []
    for record in records:
        if record['type'] == 'caption':
            continue
        prompt, image = record['conversations'][0]['value'], str(
            data_dir / record['image'])
        if as_text:
            prompt = text_prompt(captions[record['image']],
                                 prompt.replace(IMAGE_PLACEHOLDER + '\n', ''))
            image = None
        questions.append(([{'from': 'human', 'value': prompt}], image,
                          record['type'], record['answer']))
    return questions[:number]


def exact_match(model, questions: list, batch_size: int = 100) -> dict:
    """Greedy answers scored as the demo's test scores them, per kind."""
    import torch

    from mmllava.apis.generation import generate
    from mmllava.evaluation.metrics.exact_match import normalize_gqa_answer
    answers = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(questions), batch_size):
            batch = questions[start:start + batch_size]
            answers += generate(model, [turns for turns, *_ in batch],
                                [image for _, image, *_ in batch],
                                max_new_tokens=8)
    model.train()
    hits: dict[str, list[bool]] = {}
    for (_, _, kind, reference), answer in zip(questions, answers):
        hits.setdefault(kind, []).append(
            normalize_gqa_answer(answer) == normalize_gqa_answer(reference))
    every = [hit for kind_hits in hits.values() for hit in kind_hits]
    return dict(all=100 * sum(every) / len(every),
                **{kind: 100 * sum(kind_hits) / len(kind_hits)
                   for kind, kind_hits in sorted(hits.items())})


def build(cfg: Config, data: str, llm_config: Optional[dict] = None):
    """The demo's stage-2 model and a dataset of ``data``."""
    from mmllava.registry import DATASETS, MODELS
    from mmllava.utils.image_token_counts import fill_image_token_counts
    if llm_config:
        print('A random-init LLM: the projector starts random too (the '
              'stage-1 one was aligned to the demo\'s LLM).')
        cfg.model.llm = dict(type='HFCausalLM',
                             config={**cfg.demo.llm_config, **llm_config})
        cfg.model.pop('projector_pretrained')
    elif not Path(STAGE1_DIR, 'last_checkpoint').is_file():
        print(f'No stage-1 projector in {STAGE1_DIR}: the projector starts '
              'random.')
        cfg.model.pop('projector_pretrained')
    else:
        cfg.model.projector_pretrained = STAGE1_DIR
    fill_image_token_counts(cfg)
    model = MODELS.build(cfg.model)
    model.cfg = cfg
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.data_file = data
    return model, DATASETS.build(dataset_cfg)


def train_and_measure(args: argparse.Namespace) -> list[dict]:
    """Train, evaluating every ``args.eval_every`` steps and at the end."""
    import torch
    from mmengine.dataset import pseudo_collate

    from mmllava.setup_env import register_all_modules
    register_all_modules()
    torch.manual_seed(args.seed)
    order_rng = random.Random(args.seed)
    out_dir = Path(args.out)
    cfg = Config.fromfile(str(DEMO_STAGE2))
    model, dataset = build(cfg, data_file(cfg, args.data, out_dir),
                           args.llm_config)
    questions = held_out_questions(cfg, args.num_questions,
                                   as_text=args.data == 'text')
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=args.lr,
        weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / args.warmup) * 0.5 *
        (1 + math.cos(math.pi * step / args.steps)))
    rows, losses, order, seconds = [], [], [], 0.0
    model.train()
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        if len(order) < args.batch_size:
            order = list(range(len(dataset)))
            order_rng.shuffle(order)
        batch = pseudo_collate([dataset[order.pop()]
                                for _ in range(args.batch_size)])
        loss = model(**model.data_preprocessor(batch, training=True),
                     mode='loss')['loss']
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        seconds += time.perf_counter() - start
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            recent = losses[-args.eval_every:]
            rows.append(dict(step=step, seen=step * args.batch_size,
                             seconds=round(seconds, 1),
                             loss=sum(recent) / len(recent),
                             accuracy=exact_match(model, questions)))
            print(format_row(rows[-1]), flush=True)
    return rows


def format_row(row: dict) -> str:
    kinds = ' '.join(f'{kind} {value:.0f}'
                     for kind, value in row['accuracy'].items()
                     if kind != 'all')
    return (f'step {row["step"]:5d}  seen {row["seen"]:6d}  '
            f'{row["seconds"]:6.0f} s  loss {row["loss"]:.3f}  '
            f'exact match {row["accuracy"]["all"]:.1f}  ({kinds})')


def draw(rows: list[dict], out_file: Path, title: str) -> None:
    """Exact match per kind against the samples seen."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    seen = [row['seen'] for row in rows]
    for kind in rows[0]['accuracy']:
        axes.plot(seen, [row['accuracy'][kind] for row in rows],
                  label=kind, linewidth=3 if kind == 'all' else 1.2)
    axes.set_xlabel('training samples seen')
    axes.set_ylabel('held-out exact match (%)')
    axes.set_ylim(0, 100)
    axes.set_title(title, fontsize='medium')
    axes.legend(fontsize='small', ncol=3)
    figure.tight_layout()
    figure.savefig(out_file)


def main() -> None:
    args = parse_args()
    rows = train_and_measure(args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in vars(args).items()
                if key != 'out'}
    (out_dir / 'curves.json').write_text(
        json.dumps(dict(settings=settings, rows=rows), indent=1) + '\n')
    draw(rows, out_dir / 'curves.png',
         f'data {args.data}, batch {args.batch_size}, lr {args.lr}')
    print(f'Curves: {out_dir / "curves.json"}, {out_dir / "curves.png"}')


if __name__ == '__main__':
    main()
