"""Loss plots from fabricated mmengine scalar logs."""
import json
import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

from mmllava.utils.plot import (find_scalars_file, load_scalars,
                                plot_loss_curves, smooth)

TOOL = Path(__file__).parents[2] / 'tools/analysis/plot_loss.py'


def write_scalars(work_dir: Path, timestamp: str, num_iters: int) -> Path:
    """Write a scalars.json the way mmengine's LocalVisBackend does: train
    lines with 'iter' and 'step', and a validation line without a loss."""
    path = work_dir / timestamp / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    lines = [
        dict(lr=1e-3, loss=2.0 / (i + 1), time=0.1, iter=i + 1, step=i + 1,
             memory=100) for i in range(num_iters)
    ]
    lines.insert(num_iters // 2, dict(accuracy=0.5, step=1))
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return path


def test_finds_the_newest_run(tmp_path):
    write_scalars(tmp_path, '20240101_000000', 3)
    newest = write_scalars(tmp_path, '20240102_000000', 3)
    (tmp_path / '20240103_000000' / 'vis_data').mkdir(parents=True)
    assert find_scalars_file(tmp_path) == newest
    assert find_scalars_file(newest) == newest


def test_missing_scalars_names_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'run')):
        find_scalars_file(tmp_path / 'run')


def test_load_skips_lines_without_the_key(tmp_path):
    iters, values = load_scalars(write_scalars(tmp_path, 'ts', 4))
    assert iters == [1, 2, 3, 4]
    assert values == [2.0, 1.0, 2.0 / 3, 0.5]
    with pytest.raises(ValueError, match='no "grad_norm" values'):
        load_scalars(tmp_path / 'ts/vis_data/scalars.json', 'grad_norm')


def test_smooth_starts_at_the_first_value():
    assert smooth([4.0, 4.0, 4.0]) == pytest.approx([4.0, 4.0, 4.0])


def test_plot_writes_a_png(tmp_path):
    files = [
        write_scalars(tmp_path / name, '20240101_000000', 20)
        for name in ('stage1', 'stage2')
    ]
    out = plot_loss_curves(files, tmp_path / 'plots' / 'loss.png')
    with Image.open(out) as image:
        assert image.format == 'PNG' and image.width > 100


def test_cli(tmp_path, monkeypatch, capsys):
    write_scalars(tmp_path / 'run', '20240101_000000', 5)
    out = tmp_path / 'loss.png'
    monkeypatch.setattr(
        sys, 'argv', [str(TOOL), str(tmp_path / 'run'), '--out', str(out)])
    runpy.run_path(str(TOOL), run_name='__main__')
    assert out.is_file() and f'wrote {out}' in capsys.readouterr().out
    monkeypatch.setattr(
        sys, 'argv', [str(TOOL), str(tmp_path / 'empty'), '--out', str(out)])
    with pytest.raises(SystemExit, match='No scalars.json in .*empty'):
        runpy.run_path(str(TOOL), run_name='__main__')
