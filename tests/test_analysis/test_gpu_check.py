"""``tools/analysis/gpu_check.py``: its CPU run (``--device cpu --tiny``)
prints and saves every row, passes every check the CPU can run, and reports
the GPU-only paths skipped with their reason, so that the GPU command cannot
rot where no GPU is; and the rows' verdicts follow their tolerances and
targets."""
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmllava.testing.timeouts import scaled_timeout

TOOL_DIR = Path(__file__).resolve().parents[2] / 'tools/analysis'
TOOL = TOOL_DIR / 'gpu_check.py'
CPU_CHECKS = ('bf16 AMP training steps', 'fp16 AMP with loss scaling',
              "packed sequences, the project's SDPA",
              'batched generation (batch 8 = batch 1)',
              'ZeRO-3 partitioned build, one process')
#: Paths that need a package this machine lacks, or a CUDA device.
GPU_ONLY = {'packed sequences, flash-attn varlen': 'flash_attn',
            'QLoRA, 4-bit bitsandbytes': 'bitsandbytes'}
SPEED = tuple(
    f'7B-width step, packing, checkpointing {state}: {figure}'
    for state in ('off', 'on') for figure in ('tokens/s', 'MFU')) + (
        'generation, batch 1: new tokens/s',
        'generation, batch 8: new tokens/s')


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('gpu_check') / 'result.json'
    result = subprocess.run(
        [sys.executable, str(TOOL), '--device', 'cpu', '--tiny', '--out',
         str(out)], capture_output=True, text=True,
        timeout=scaled_timeout(180))
    assert result.returncode == 0, result.stdout[-3000:] + \
        result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


@pytest.fixture
def parts(monkeypatch):
    """The tool's parts, found as the tool finds them: through its folder
    on ``sys.path``."""
    monkeypatch.syspath_prepend(str(TOOL_DIR))
    return {name: importlib.import_module(f'gpu_check_parts.{name}')
            for name in ('checks', 'report', 'speed')}


@pytest.mark.slow
def test_table_and_json_have_every_row(tiny_run):
    results, stdout = tiny_run
    names = [row['name'] for row in results['rows']]
    assert names == [*CPU_CHECKS[:3], *GPU_ONLY, *CPU_CHECKS[3:], *SPEED]
    for row in results['rows']:
        assert f'| {row["name"]} | {row["status_cell"]} |' in stdout
    assert 'checks: 5 pass / 0 fail / 2 skipped' in stdout


@pytest.mark.slow
def test_cpu_checks_pass_within_their_tolerance(tiny_run):
    rows = {row['name']: row for row in tiny_run[0]['rows']}
    for name in CPU_CHECKS:
        assert rows[name]['status'] == 'pass', rows[name]
        assert rows[name]['tolerance'] != '-'
    for name in CPU_CHECKS[:3] + CPU_CHECKS[4:]:
        detail = rows[name]['detail']
        assert len(detail['losses']) == len(detail['twin_losses']) == 3
        assert detail['max_relative_difference'] <= float(
            rows[name]['tolerance'].split()[1])
    zero3 = rows['ZeRO-3 partitioned build, one process']['detail']
    # Everything but the projector's 4 tensors, built inside zero.Init.
    assert zero3['partitioned'] == zero3['parameters'] - 4


@pytest.mark.slow
def test_gpu_only_paths_are_skipped_with_the_reason(tiny_run):
    rows = {row['name']: row for row in tiny_run[0]['rows']}
    for name, package in GPU_ONLY.items():
        row = rows[name]
        assert row['status'] == 'skipped'
        assert 'needs a CUDA device (this run: cpu)' in row['reason']
        assert row['status_cell'].startswith('skipped: ')
        if importlib.util.find_spec(package) is None:
            assert f'{package} does not import' in row['reason']


@pytest.mark.slow
def test_speed_figures_are_measured_not_judged_on_cpu(tiny_run):
    results, _ = tiny_run
    rows = {row['name']: row for row in results['rows']}
    for name in SPEED:
        assert rows[name]['status'] == 'measured'
    speed = results['speed']
    assert speed['layers'] == 2 and speed['gemm_peak_flops'] > 0
    for key, run in speed['training'].items():
        assert run['tokens_per_s'] > 0 and 0 < run['mfu'] < math.inf, key
        # AdamW at learning rate 0: the same weights at every step, so the
        # two sides' losses on the same batches agree.
        assert all(math.isfinite(loss) for loss in run['losses'])
    training = speed['training']
    assert training['mmllava_checkpointing_off']['losses'] == pytest.approx(
        training['transformers_checkpointing_off']['losses'], rel=2e-2)
    assert training['mmllava_checkpointing_off']['padding_fraction'] < \
        training['transformers_checkpointing_off']['padding_fraction']
    assert all(rate > 0 for rate in
               speed['generation']['tokens_per_s'].values())


def test_help_answers_without_importing_torch():
    """``--help`` parses before the heavy imports."""
    code = ('import runpy, sys\n'
            f'sys.argv = [{str(TOOL)!r}, "--help"]\n'
            'try:\n'
            f'    runpy.run_path({str(TOOL)!r}, run_name="__main__")\n'
            'except SystemExit:\n'
            '    pass\n'
            'print("torch imported:", "torch" in sys.modules)\n')
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True,
                            timeout=scaled_timeout(30))
    assert 'usage: gpu_check.py' in result.stdout
    assert 'torch imported: False' in result.stdout


def test_loss_rows_follow_the_tolerance(parts):
    loss_row = parts['checks'].loss_row
    twin = [10.0, 9.0]
    assert loss_row([10.1, 9.0], twin, 'bf16').status == 'pass'
    assert loss_row([10.3, 9.0], twin, 'bf16').status == 'fail'
    assert loss_row([10.0, math.nan], twin, 'bf16').status == 'fail'
    assert loss_row([10.0001, 9.0], twin, 'fp32').status == 'pass'
    assert loss_row([10.01, 9.0], twin, 'fp32').status == 'fail'


def test_a_failed_check_fails_the_run_and_a_skip_does_not(parts):
    report = parts['report']
    rows = [report.Row('a', report.PASS),
            report.skipped('b', 'needs a CUDA device'),
            report.Row('c', report.MISSED, kind='speed')]
    assert report.failed(rows) == []
    rows.append(report.Row('d', report.FAIL, reason='boom'))
    assert report.failed(rows) == ['d']
    assert '| b | skipped: needs a CUDA device | - | - |' in \
        report.format_table(rows)


def test_speed_targets_are_judged_only_on_a_full_gpu_run(parts):
    speed = parts['speed']

    def run(tokens_per_s, mfu):
        return dict(tokens_per_s=tokens_per_s, mfu=mfu)

    result = dict(
        training=dict(
            mmllava_checkpointing_off=run(1400, 0.50),
            transformers_checkpointing_off=run(1000, 0.36),
            mmllava_checkpointing_on=run(1000, 0.40),
            transformers_checkpointing_on=dict(error='out of memory')),
        generation=dict(prompts=8, tokens_per_s=dict(
            mmllava_batch1=30, transformers_batch1=20, mmllava_batch8=200,
            transformers_batch8=100)))
    rows = {row.name: row for row in speed.speed_rows(result, judge=True)}
    prefix = '7B-width step, packing, checkpointing'
    assert rows[f'{prefix} off: tokens/s'].status == 'met'
    assert rows[f'{prefix} off: MFU'].status == 'met'
    assert rows[f'{prefix} on: tokens/s'].status == 'skipped'
    assert rows[f'{prefix} on: tokens/s'].reason == 'out of memory'
    assert rows[f'{prefix} on: MFU'].status == 'measured'
    result['training']['mmllava_checkpointing_off'] = run(1200, 0.44)
    rows = {row.name: row for row in speed.speed_rows(result, judge=True)}
    assert rows[f'{prefix} off: tokens/s'].status == 'missed'
    assert rows[f'{prefix} off: MFU'].status == 'missed'
    rows = speed.speed_rows(result, judge=False)
    assert {row.status for row in rows} <= {'measured', 'skipped'}


def test_layers_fit_what_the_probes_measured(parts):
    speed = parts['speed']
    gb = 1e9
    # 3 GB a layer, 6 GB the rest; 90% of 80 GB leaves room for 22.
    layers, fit = speed.layers_that_fit([9 * gb, 12 * gb], 80 * gb, 32)
    assert layers == 22
    assert fit['gb_per_layer'] == pytest.approx(3)
    assert fit['gb_fixed'] == pytest.approx(6)
    assert speed.layers_that_fit([9 * gb, 12 * gb], 200 * gb, 32)[0] == 32
    with pytest.raises(ValueError, match='no more than'):
        speed.layers_that_fit([9 * gb, 9 * gb], 80 * gb, 32)


def test_each_side_probes_its_own_heaviest_batch(parts):
    # Importable now: the fixture put the tool's folder on sys.path.
    from benchmark_parts.batches import Sample

    def sample(length):
        ids = torch.ones(length, dtype=torch.long)
        return Sample('s', ids, ids, torch.empty(0), length)

    many_short = [sample(10)] * 6   # 60 real, 60 padded
    one_long = [sample(40), sample(2)]   # 42 real, 80 padded
    batches = [many_short, one_long]
    heaviest = parts['speed'].heaviest
    assert heaviest(batches, 'mmllava', 576) is many_short
    assert heaviest(batches, 'transformers', 576) is one_long
