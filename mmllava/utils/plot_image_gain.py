"""The image gain of a run (``ImageGainHook``) against the iteration."""
import json
import re
from pathlib import Path
from typing import Optional, Sequence, Union

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mmllava.utils.plot import PathLike, load_scalars


ScalarFiles = Union[PathLike, Sequence[PathLike]]


def image_gain_kinds(scalar_file: ScalarFiles, prefix: str = 'val') -> list:
    """The kinds with their own ``{prefix}/<kind>/image_gain`` in a
    ``scalars.json`` (or in any launch of a resumed run), in the order they
    first appear."""
    pattern = re.compile(re.escape(prefix) + r'/(.+)/image_gain$')
    files = [scalar_file] if isinstance(scalar_file, (str, Path)) \
        else scalar_file
    kinds = {}
    for path in files:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                for key in json.loads(line):
                    match = pattern.match(key)
                    if match:
                        kinds[match.group(1)] = None
    return list(kinds)


def plot_image_gain(scalar_file: ScalarFiles,
                    out_file: Optional[PathLike] = None,
                    axes: Optional[Axes] = None,
                    prefix: str = 'val',
                    per_kind: bool = True) -> Axes:
    """Draw ``{prefix}/image_gain`` (vs shuffled images) and
    ``{prefix}/image_gain_blank`` (vs blank images) against the iteration,
    and with ``per_kind`` each kind's ``{prefix}/<kind>/image_gain`` as a
    thin line. A gain near 0 means the model does not use its images.

    Args:
        scalar_file (str | Path | Sequence): A ``scalars.json`` that
            ``ImageGainHook`` wrote to, or the launches of a resumed run
            (see :func:`~mmllava.utils.plot.find_scalars_files`).
        out_file (str | Path, optional): A PNG to write (its folder is
            created).
        axes (Axes, optional): Where to draw; a new figure by default.
        prefix (str): The hook's ``prefix``. Defaults to ``'val'``.
        per_kind (bool): Also draw each kind's gain. Defaults to True.

    Returns:
        Axes: The axes drawn on.
    """
    if axes is None:
        # A bare Figure on the Agg canvas leaves pyplot's global backend
        # alone.
        figure = Figure(figsize=(7, 4.5), dpi=100)
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
    for name, label in (('image_gain', 'vs shuffled images'),
                        ('image_gain_blank', 'vs blank images')):
        iters, values = load_scalars(scalar_file, f'{prefix}/{name}')
        axes.plot(iters, values, marker='o', linewidth=1.8, label=label)
    if per_kind:
        for kind in image_gain_kinds(scalar_file, prefix):
            iters, values = load_scalars(scalar_file,
                                         f'{prefix}/{kind}/image_gain')
            axes.plot(iters, values, linewidth=0.9, alpha=0.6, label=kind)
    axes.axhline(0, color='grey', linewidth=0.8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel('iteration')
    axes.set_ylabel('held-out loss gain (nats / token)')
    axes.set_title('What the images are worth')
    axes.grid(alpha=0.3)
    axes.legend(fontsize='small')
    if out_file is not None:
        axes.figure.tight_layout()
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        axes.figure.savefig(out_file)
    return axes
