"""Evaluate a checkpoint on a suite of benchmarks and write one table.

    python tools/eval/run_suite.py CHECKPOINT [--suite llava-1.5 | FILE]
        [--work-dir work_dirs/suite] [--gpus N] [--only NAME,...]
        [--cfg-options key=value ...]

Each benchmark of the suite whose data is present (its config's question or
data file exists, relative to the current folder, as ``tools/test.py``
reads it) is run with ``tools/test.py`` in ``WORK_DIR/<benchmark>``; an
absent one is skipped with one line. A benchmark whose metrics file is there
is done and not run again; one with saved predictions (a killed run)
continues with ``--resume``: rerun the same command after a kill. With
``--gpus N`` (N > 1) each benchmark runs on N processes through
``torch.distributed.run``, as ``tools/dist_test.sh``.

The table, ``WORK_DIR/suite.md`` and ``WORK_DIR/suite.json``, is rewritten
after every benchmark: the model's number beside the published
LLaVA-1.5-7B one. ``FILE`` is a config (``.py`` or ``.json``) holding
``benchmarks = [dict(name=..., config=..., metric=..., published=...,
cfg_options=[...]), ...]``; ``metric`` is a key of the metrics the
benchmark prints, or ``mean:<regex>`` for the mean of the keys matching it.
Exit status: 0 when every present benchmark finished, 1 otherwise.
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = 'configs/llava/'


@dataclass
class Benchmark:
    """One row of a suite.

    Args:
        name (str): The row's name, also its work-dir folder.
        config (str): The test config.
        metric (str): The metric key to report, or ``mean:<regex>``.
        published (float, optional): LLaVA-1.5-7B's published number.
        cfg_options (list[str]): Extra ``--cfg-options`` for this one.
    """
    name: str
    config: str
    metric: str
    published: Optional[float] = None
    cfg_options: list = field(default_factory=list)


# The LLaVA-1.5 paper's benchmarks; published numbers of LLaVA-1.5-7B from
# its model zoo (VQAv2 and VizWiz: test-dev / test server numbers, POPE: F1
# averaged over its three splits, SEED: its image part).
SUITES = {
    'llava-1.5': [
        Benchmark('VQAv2', CONFIGS + 'llava-1.5-7b_vqav2.py',
                  'vqa/accuracy', 78.5),
        Benchmark('GQA', CONFIGS + 'llava-1.5-7b_gqa.py',
                  'gqa/accuracy', 62.0),
        Benchmark('VizWiz', CONFIGS + 'llava-1.5-7b_vizwiz.py',
                  'vqa/accuracy', 50.0),
        Benchmark('ScienceQA-IMG', CONFIGS + 'llava-1.5-7b_scienceqa.py',
                  'scienceqa/IMG', 66.8),
        Benchmark('TextVQA', CONFIGS + 'llava-1.5-7b_textvqa.py',
                  'vqa/accuracy', 58.2),
        Benchmark('POPE', CONFIGS + 'llava-1.5-7b_pope.py',
                  r'mean:^pope/(adversarial|popular|random)/f1$', 85.9),
        Benchmark('MME', CONFIGS + 'llava-1.5-7b_mme.py', 'mme/perception',
                  1510.7),
        Benchmark('MMBench', CONFIGS + 'llava-1.5-7b_mmbench.py',
                  'mmbench/accuracy', 64.3),
        Benchmark('MMBench-CN', CONFIGS + 'llava-1.5-7b_mmbench-cn.py',
                  'mmbench-cn/accuracy', 58.3),
        Benchmark('SEED-IMG', CONFIGS + 'llava-1.5-7b_seed.py',
                  'seed/accuracy', 66.1),
        Benchmark('Q-Bench', CONFIGS + 'llava-1.5-7b_qbench.py',
                  'qbench/accuracy', None),
        Benchmark('MM-Vet', CONFIGS + 'llava-1.5-7b_mmvet.py',
                  'mm-vet/total', 31.1),
    ],
}


def load_suite(suite: str) -> list:
    """A named suite, or the ``benchmarks`` of a config file."""
    if suite in SUITES:
        return SUITES[suite]
    if not osp.isfile(suite):
        raise ValueError(f'unknown suite {suite!r}: name one of '
                         f'{", ".join(SUITES)} or a config file')
    from mmengine.config import Config
    entries = Config.fromfile(suite).get('benchmarks')
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(f'{suite}: no "benchmarks" list')
    benchmarks = []
    for index, entry in enumerate(entries):
        try:
            benchmarks.append(Benchmark(**dict(entry)))
        except TypeError as error:
            raise ValueError(f'{suite}: benchmark {index}: {error}') from None
    return benchmarks


def data_files(config: str) -> list:
    """The data files a test config reads (question / data file and
    ground truth), as paths relative to the current folder."""
    from mmengine.config import Config
    dataset = Config.fromfile(config).test_dataloader.dataset
    files = [dataset.get(key) for key in ('question_file', 'data_file')]
    truth = dataset.get('ground_truth')
    if truth:
        files.append(truth.get('file'))
    return [path for path in files if path]


def read_metric(metrics: dict, metric: str) -> Optional[float]:
    """The reported number: a key, or the mean of the keys a
    ``mean:<regex>`` matches; None when absent (e.g. a test split scored by
    a server)."""
    if metric.startswith('mean:'):
        pattern = re.compile(metric[len('mean:'):])
        values = [value for key, value in metrics.items()
                  if pattern.search(key)]
        return sum(values) / len(values) if values else None
    return metrics.get(metric)


def metrics_file(work_dir: str, config: str) -> str:
    """Where ``tools/test.py`` writes the metrics of a run."""
    name = osp.splitext(osp.basename(config))[0]
    return osp.join(work_dir, f'{name}_answers.metrics.json')


def test_command(benchmark: Benchmark, checkpoint: str, work_dir: str,
                 resume: bool, gpus: int, cfg_options: list,
                 port: int = 29500) -> list:
    """The ``tools/test.py`` command of one benchmark."""
    test_py = osp.join(REPO, 'tools', 'test.py')
    args = [benchmark.config, checkpoint, '--work-dir', work_dir]
    if resume:
        args.append('--resume')
    options = [*cfg_options, *benchmark.cfg_options]
    if options:
        args += ['--cfg-options', *options]
    if gpus > 1:
        return [sys.executable, '-m', 'torch.distributed.run',
                f'--nproc_per_node={gpus}', f'--master_port={port}',
                test_py, *args, '--launcher', 'pytorch']
    return [sys.executable, test_py, *args]


def run_command(command: list, log_file: str) -> int:
    """Run one benchmark, its output to ``log_file``; its exit status."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO, *filter(None, [env.get('PYTHONPATH')])])
    with open(log_file, 'a', encoding='utf-8') as log:
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              env=env).returncode


def format_number(value: Optional[float]) -> str:
    return '—' if value is None else f'{value:.1f}'


def write_table(rows: list, work_dir: str) -> None:
    """``suite.md`` and ``suite.json`` in ``work_dir``."""
    with open(osp.join(work_dir, 'suite.json'), 'w', encoding='utf-8') as f:
        json.dump(rows, f, indent=1)
    lines = ['| Benchmark | Metric | This model | LLaVA-1.5-7B (published) '
             '| Status |', '|---|---|---|---|---|']
    lines += [f'| {row["name"]} | `{row["metric"]}` | '
              f'{format_number(row["value"])} | '
              f'{format_number(row["published"])} | {row["status"]} |'
              for row in rows]
    with open(osp.join(work_dir, 'suite.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


def run_suite(benchmarks: list, checkpoint: str, work_dir: str,
              gpus: int = 1, cfg_options: Optional[list] = None,
              run: Callable[[list, str], int] = run_command,
              say: Callable[[str], None] = print) -> list:
    """Run the present benchmarks; return the table's rows."""
    os.makedirs(work_dir, exist_ok=True)
    rows = []
    for number, benchmark in enumerate(benchmarks):
        row = dict(name=benchmark.name, metric=benchmark.metric,
                   config=benchmark.config, value=None,
                   published=benchmark.published)
        missing = [path for path in data_files(benchmark.config)
                   if not osp.exists(path)]
        bench_dir = osp.join(work_dir, benchmark.name)
        results = metrics_file(bench_dir, benchmark.config)
        if missing:
            row['status'] = f'absent ({missing[0]})'
            say(f'{benchmark.name}: skipped, no {missing[0]}')
        else:
            if osp.isfile(results):
                say(f'{benchmark.name}: done before, reading {results}')
                status = 0
            else:
                os.makedirs(bench_dir, exist_ok=True)
                resume = osp.isdir(osp.join(bench_dir, 'predictions'))
                say(f'{benchmark.name}: '
                    f'{"resuming" if resume else "running"} '
                    f'{benchmark.config}')
                status = run(test_command(benchmark, checkpoint, bench_dir,
                                          resume, gpus, cfg_options or [],
                                          29500 + number),
                             osp.join(bench_dir, 'suite.log'))
            if status == 0 and osp.isfile(results):
                with open(results, encoding='utf-8') as file:
                    row['value'] = read_metric(json.load(file),
                                               benchmark.metric)
                row['status'] = 'done' if row['value'] is not None else \
                    'done (no local score: answers for the server or judge)'
            else:
                row['status'] = (f'failed (exit {status}; see '
                                 f'{osp.join(bench_dir, "suite.log")})')
                say(f'{benchmark.name}: {row["status"]}')
        rows.append(row)
        write_table(rows, work_dir)
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help='checkpoint file or work dir')
    parser.add_argument('--suite', default='llava-1.5',
                        help=f'{", ".join(SUITES)} or a config file '
                        '(default: %(default)s)')
    parser.add_argument('--work-dir', default='work_dirs/suite')
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per benchmark (default: 1)')
    parser.add_argument('--only', help='comma-separated benchmark names')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed to every tools/test.py run')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        benchmarks = load_suite(args.suite)
    except ValueError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    if args.only:
        wanted = set(args.only.split(','))
        unknown = wanted - {b.name for b in benchmarks}
        if unknown:
            print(f'error: no benchmark {sorted(unknown)} in the suite',
                  file=sys.stderr)
            return 2
        benchmarks = [b for b in benchmarks if b.name in wanted]
    rows = run_suite(benchmarks, args.checkpoint, args.work_dir, args.gpus,
                     args.cfg_options)
    with open(osp.join(args.work_dir, 'suite.md'), encoding='utf-8') as f:
        print(f.read())
    print(f'Table: {osp.join(args.work_dir, "suite.md")} and suite.json')
    return 1 if any(row['status'].startswith('failed') for row in rows) \
        else 0


if __name__ == '__main__':
    sys.exit(main())
