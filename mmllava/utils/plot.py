"""Training curves from mmengine's scalar logs, drawn to a PNG."""
import json
from pathlib import Path
from typing import Union

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

PathLike = Union[str, Path]


def find_scalars_file(work_dir: PathLike) -> Path:
    """Find the scalar log of a run.

    Args:
        work_dir (str | Path): An mmengine work dir, whose
            ``LocalVisBackend`` writes ``<timestamp>/vis_data/scalars.json``
            once per launch, or the path of a ``scalars.json`` itself.

    Returns:
        Path: The file itself, or that of the newest launch that has one
        (mmengine's ``YYYYmmdd_HHMMSS`` timestamps sort by time).
    """
    path = Path(work_dir)
    if path.is_file():
        return path
    found = sorted(path.glob('*/vis_data/scalars.json'))
    if not found:
        raise FileNotFoundError(
            f'No scalars.json in {path}: expected '
            f'{path}/<timestamp>/vis_data/scalars.json, written by mmengine '
            "when the config's visualizer has a LocalVisBackend")
    return found[-1]


def load_scalars(scalar_file: PathLike,
                 key: str = 'loss') -> tuple[list[int], list[float]]:
    """Read one scalar against the iteration from a ``scalars.json``.

    Args:
        scalar_file (str | Path): One json object per line, as mmengine's
            ``LocalVisBackend`` writes it.
        key (str): The scalar to read; lines without it (validation
            metrics) are skipped.

    Returns:
        tuple: The iterations and the values.
    """
    iters, values = [], []
    keys_seen = set()
    for line in Path(scalar_file).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        keys_seen.update(record)
        if key in record:
            # Train lines carry the global 'iter'; 'step' is the fallback
            # mmengine always writes.
            iters.append(record.get('iter', record.get('step')))
            values.append(record[key])
    if not values:
        raise ValueError(f'{scalar_file} has no "{key}" values; its keys are '
                         f'{sorted(keys_seen)}')
    return iters, values


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """Exponential moving average with the start-up bias removed (the
    TensorBoard smoothing), so the first points are not pulled to 0."""
    smoothed, average = [], 0.0
    for index, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**index))
    return smoothed


def run_name(scalar_file: PathLike) -> str:
    """Name a run by its work dir: ``WORK_DIR/<timestamp>/vis_data/
    scalars.json`` gives ``WORK_DIR``'s name, any other file its folder's."""
    path = Path(scalar_file).resolve()
    if path.parent.name == 'vis_data':
        return path.parents[2].name
    return path.parent.name


def plot_loss_curves(scalar_files: list,
                     out_file: PathLike,
                     key: str = 'loss') -> str:
    """Plot a scalar against the iteration, one line per run, to a PNG.

    Each run is drawn raw (faint) and smoothed (solid) in one colour and
    labelled by its work dir's name.

    Args:
        scalar_files (list[str | Path]): mmengine ``scalars.json`` files.
        out_file (str | Path): The PNG to write; its folder is created.
        key (str): The scalar to plot.

    Returns:
        str: ``out_file``.
    """
    # A bare Figure on the Agg canvas leaves pyplot's global backend alone.
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for scalar_file in scalar_files:
        iters, values = load_scalars(scalar_file, key)
        (raw, ) = axes.plot(iters, values, linewidth=1, alpha=0.3)
        axes.plot(iters, smooth(values), color=raw.get_color(),
                  linewidth=1.8, label=run_name(scalar_file))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel('iteration')
    axes.set_ylabel(key)
    axes.set_title(f'{key} per iteration')
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file)
    return str(out_file)
