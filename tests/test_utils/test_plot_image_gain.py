"""``mmllava/utils/plot_image_gain.py``: the image gain from a fabricated
scalar log, shaped as mmengine writes it with ``ImageGainHook``."""
import json

from PIL import Image

from mmllava.utils.plot_image_gain import image_gain_kinds, plot_image_gain


def write_scalars(path):
    """Train lines, and the hook's lines (``step`` only) every 2 iterations."""
    lines = []
    for step in range(1, 7):
        lines.append(dict(loss=1.0 / step, iter=step, step=step))
        if step % 2 == 0:
            lines.append({'val/loss_own': 1.0, 'val/loss_shuffled': 1.0 + step,
                          'val/loss_blank': 1.0, 'val/image_gain': step / 10,
                          'val/image_gain_blank': step / 20,
                          'val/colour/image_gain': step / 5,
                          'val/colour/image_gain_blank': 0.0,
                          'val/count_shape/image_gain': 0.0,
                          'val/count_shape/image_gain_blank': 0.0,
                          'step': step})
    path.write_text(''.join(json.dumps(line) + '\n' for line in lines))
    return path


def test_plots_the_gains_and_each_kind(tmp_path):
    scalars = write_scalars(tmp_path / 'scalars.json')
    assert image_gain_kinds(scalars) == ['colour', 'count_shape']
    out = tmp_path / 'plots' / 'gain.png'
    axes = plot_image_gain(scalars, out)
    lines = {line.get_label(): line for line in axes.get_lines()
             if not line.get_label().startswith('_')}
    assert list(lines) == ['vs shuffled images', 'vs blank images',
                           'colour', 'count_shape']
    assert list(lines['vs shuffled images'].get_xdata()) == [2, 4, 6]
    assert list(lines['colour'].get_ydata()) == [0.4, 0.8, 1.2]
    assert Image.open(out).size == (700, 450)
    axes = plot_image_gain(scalars, per_kind=False)
    assert len([line for line in axes.get_lines()
                if not line.get_label().startswith('_')]) == 2
