"""``tools/analysis/benchmark.py --quick``: every figure, ratios that follow
from the figures, and the equality checks that make the comparison valid."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mmllava.testing.timeouts import scaled_timeout

TOOL = Path(__file__).parents[2] / 'tools/analysis/benchmark.py'
BEST = 'mmllava_packed'
TRAIN_FIGURES = ('train samples/s', 'train supervised tokens/s',
                 'train padding fraction', 'train peak memory (MB)',
                 'train final loss', 'train MFU (%)')
GENERATION = ('generate new tokens/s, batch 1',
              'generate new tokens/s, batch 8',
              'generate new tokens/s, batch 1, torch kernels',
              'generate new tokens/s, batch 8, torch kernels')
# Each generation figure as the median and the lowest of its rounds (one
# round in a quick run).
OTHER_FIGURES = tuple(f'{figure}, {statistic} of 1 round'
                      for figure in GENERATION
                      for statistic in ('median', 'lowest')) + (
    'data path samples/s', 'data path samples/s, torch resize')


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp('benchmark')
    out = folder / 'results.json'
    result = subprocess.run(
        [sys.executable, str(TOOL), '--quick', '--threads', '1', '--out',
         str(out), '--work-dir', str(folder / 'work')],
        capture_output=True, text=True, timeout=scaled_timeout(300))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


@pytest.mark.slow
def test_table_has_every_figure(quick_run):
    results, stdout = quick_run
    figures = {item['figure'] for item in results['rows']}
    expected = {f'{figure} [{BEST}]' for figure in TRAIN_FIGURES}
    expected |= {f'{figure} [{name}]'
                 for name in ('mmllava_grouped', 'mmllava_random')
                 for figure in TRAIN_FIGURES[:3]}
    expected |= set(OTHER_FIGURES)
    assert figures == expected
    for figure in figures:
        assert f'| {figure} |' in stdout
    for item in results['rows']:
        assert math.isfinite(item['mmllava']) and item['mmllava'] >= 0
        assert item['baseline_best'] > 0
        # Generation and the data path have one baseline setting.
        assert (item['baseline_random'] is None) == (
            item['figure'] in OTHER_FIGURES)
    generation = results['generation']
    for key, median in generation['tokens_per_s'].items():
        assert 0 < generation['lowest_tokens_per_s'][key] <= median


@pytest.mark.slow
def test_ratios_follow_from_the_figures(quick_run):
    results, _ = quick_run
    for item in results['rows']:
        for column, ratio in (('baseline_random', 'ratio_random'),
                              ('baseline_best', 'ratio_best')):
            if item[column] is None:
                assert item[ratio] is None
            else:
                assert item[ratio] == pytest.approx(
                    item['mmllava'] / item[column])
    train = results['training']
    rows = {item['figure']: item for item in results['rows']}
    throughput = rows[f'train supervised tokens/s [{BEST}]']
    assert throughput['mmllava'] == pytest.approx(
        train[BEST]['supervised_tokens_per_s'])
    assert throughput['baseline_best'] == pytest.approx(
        train['baseline_best']['supervised_tokens_per_s'])
    # Every setting trains on the same samples, so the same FLOPs: MFU
    # follows throughput.
    assert rows[f'train MFU (%) [{BEST}]']['ratio_random'] == pytest.approx(
        rows[f'train samples/s [{BEST}]']['ratio_random'])
    # Packing leaves (almost) no padding; random batches leave plenty.
    assert train[BEST]['padding_fraction'] < 0.05 < \
        train['baseline_random']['padding_fraction']


@pytest.mark.slow
def test_equality_checks_ran_and_passed(quick_run):
    results, stdout = quick_run
    checks = results['checks']
    assert checks['logits']['equal']
    assert checks['logits']['max_difference'] <= checks['logits']['atol']
    pairs = [name for name in checks if ' vs ' in name]
    assert sorted(pairs) == sorted([
        f'{BEST} vs baseline_random', 'mmllava_random vs baseline_random',
        'mmllava_grouped vs baseline_best'])
    for name in pairs:
        assert checks[name]['equal'], checks[name]
        ours, theirs = checks[name]['final_loss']
        assert ours == pytest.approx(theirs, abs=1e-3)
    # Losses of two epochs were compared, step by step.
    epochs = results['training'][BEST]['step_losses']
    assert len(epochs) == 2 and all(len(steps) == 3 for steps in epochs)
    assert checks['generation']['equal']
    answers = results['generation']['answers']
    assert len(answers) == 6  # three sides, two batch sizes
    assert len(set(map(tuple, answers.values()))) == 1
    assert checks['data_path']['equal']
    assert checks['data_path']['records'] == results['setup']['samples']
    apart = checks['data_path']['torch_resize']
    assert apart['ids_equal'] and apart['max_levels'] <= 1
    assert 0 < apart['fraction_differing'] < 0.01
    assert 'torch resize: pixels at most' in stdout
    assert 'checks: logits ok' in stdout and 'FAILED' not in stdout


@pytest.mark.slow
def test_parts_runs_only_the_parts_named(tmp_path):
    out = tmp_path / 'results.json'
    result = subprocess.run(
        [sys.executable, str(TOOL), '--quick', '--threads', '1', '--parts',
         'data', '--out', str(out)],
        capture_output=True, text=True, timeout=scaled_timeout(300))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert [item['figure'] for item in results['rows']] == \
        ['data path samples/s', 'data path samples/s, torch resize']
    assert list(results['checks']) == ['data_path']
    assert 'training' not in results and 'generation' not in results


@pytest.mark.slow
def test_parts_refuses_an_unknown_part():
    result = subprocess.run(
        [sys.executable, str(TOOL), '--quick', '--parts', 'data,trianing'],
        capture_output=True, text=True, timeout=scaled_timeout(60))
    assert result.returncode == 2
    assert "unknown parts ['trianing']" in result.stderr


def llava_next_counts(image_sizes, pinpoints, tile, patch):
    """Image tokens and tiles per image as transformers' LlavaNext
    processor and model count them (CLIP tower, CLS dropped)."""
    from transformers import LlavaNextImageProcessorPil, LlavaNextProcessor
    from transformers.models.llava_next.modeling_llava_next import \
        image_size_to_num_patches
    processor = LlavaNextProcessor.__new__(LlavaNextProcessor)
    processor.image_processor = LlavaNextImageProcessorPil(
        size=dict(shortest_edge=tile), crop_size=dict(height=tile, width=tile),
        image_grid_pinpoints=pinpoints)
    processor.patch_size = patch
    processor.num_additional_image_tokens = 1
    processor.vision_feature_select_strategy = 'default'
    processor.images_kwargs = {}
    tokens = processor._get_num_multimodal_tokens(
        [tuple(size) for size in image_sizes]).num_image_tokens
    tiles = [image_size_to_num_patches(tuple(size), pinpoints, tile)
             for size in image_sizes]
    return tokens, tiles


@pytest.mark.slow
def test_anyres_part_counts_as_transformers(tmp_path):
    out = tmp_path / 'results.json'
    result = subprocess.run(
        [sys.executable, str(TOOL), '--quick', '--threads', '1', '--parts',
         'anyres', '--out', str(out)],
        capture_output=True, text=True, timeout=scaled_timeout(300))
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    cost = results['anyres']
    vision = results['setup']['sizes']['vision']
    tokens, tiles = llava_next_counts(
        cost['image_sizes'], cost['grid_pinpoints'], vision['image_size'],
        vision['patch_size'])
    assert cost['anyres']['image_tokens'] == tokens
    assert cost['anyres']['tiles'] == tiles
    per_tile = (vision['image_size'] // vision['patch_size'])**2
    assert cost['pad']['image_tokens'] == [per_tile] * len(tokens)
    # The LLM runs each sample's text plus its image rows, the same text
    # in both modes.
    extra = [a - p for a, p in zip(cost['anyres']['image_tokens'],
                                   cost['pad']['image_tokens'])]
    assert [a - p for a, p in zip(cost['anyres']['positions'],
                                  cost['pad']['positions'])] == extra
    rows = {row['figure']: row for row in cost['rows']}
    assert rows['image tokens per image']['ratio'] == pytest.approx(
        sum(tokens) / (per_tile * len(tokens)))
    for row in cost['rows']:
        assert row['pad'] > 0 and row['anyres'] > 0
        assert f'| {row["figure"]} |' in result.stdout
