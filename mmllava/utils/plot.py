"""Training curves from mmengine's scalar logs, drawn to a PNG."""
import json
from pathlib import Path
from typing import Sequence, Union

from matplotlib.axes import Axes
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


def find_scalars_files(work_dir: PathLike) -> list[Path]:
    """Every launch's scalar log of a run, oldest first: a resumed run
    writes the iterations after its checkpoint to a new launch folder.

    Args:
        work_dir (str | Path): An mmengine work dir.

    Returns:
        list[Path]: The ``<timestamp>/vis_data/scalars.json`` files.
    """
    found = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not found:
        find_scalars_file(work_dir)  # raises, naming the expected layout
    return found


def load_scalars(scalar_file: Union[PathLike, Sequence[PathLike]],
                 key: str = 'loss') -> tuple[list[int], list[float]]:
    """Read one scalar against the iteration from a ``scalars.json``, or
    from the launches of a resumed run.

    Args:
        scalar_file (str | Path | Sequence): One json object per line, as
            mmengine's ``LocalVisBackend`` writes it; or several such files,
            oldest first, where a later file's value of an iteration
            replaces an earlier one's (a run resumed from a checkpoint
            repeats the iterations after it).
        key (str): The scalar to read; lines without it (validation
            metrics) are skipped.

    Returns:
        tuple: The iterations, ascending, and the values.
    """
    files = [scalar_file] if isinstance(scalar_file, (str, Path)) \
        else list(scalar_file)
    by_iter: dict[int, float] = {}
    keys_seen = set()
    for path in files:
        for line in Path(path).read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            keys_seen.update(record)
            if key in record:
                # Train lines carry the global 'iter'; 'step' is the
                # fallback mmengine always writes.
                by_iter[record.get('iter', record.get('step'))] = record[key]
    if not by_iter:
        raise ValueError(f'{", ".join(map(str, files))} has no "{key}" '
                         f'values; its keys are {sorted(keys_seen)}')
    iters = sorted(by_iter)
    return iters, [by_iter[iteration] for iteration in iters]


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


def draw_curves(axes: Axes, scalar_files: list, key: str = 'loss') -> None:
    """Draw a scalar against the iteration, one line per run: raw (faint)
    and smoothed (solid) in one colour, labelled by the run's work dir.

    Args:
        axes (Axes): Where to draw.
        scalar_files (list): Per run, a ``scalars.json`` or the list of a
            resumed run's launches (see :func:`load_scalars`).
        key (str): The scalar to draw.
    """
    for scalar_file in scalar_files:
        iters, values = load_scalars(scalar_file, key)
        (raw, ) = axes.plot(iters, values, linewidth=1, alpha=0.3)
        last = scalar_file if isinstance(scalar_file, (str, Path)) \
            else scalar_file[-1]
        axes.plot(iters, smooth(values), color=raw.get_color(),
                  linewidth=1.8, label=run_name(last))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel('iteration')
    axes.set_ylabel(key)
    axes.set_title(f'{key} per iteration')
    axes.grid(alpha=0.3)
    axes.legend()


def plot_loss_curves(scalar_files: list,
                     out_file: PathLike,
                     key: str = 'loss') -> str:
    """Plot a scalar against the iteration, one line per run, to a PNG
    (see :func:`draw_curves`).

    Args:
        scalar_files (list): Per run, a ``scalars.json`` or the list of a
            resumed run's launches.
        out_file (str | Path): The PNG to write; its folder is created.
        key (str): The scalar to plot.

    Returns:
        str: ``out_file``.
    """
    # A bare Figure on the Agg canvas leaves pyplot's global backend alone.
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    draw_curves(figure.add_subplot(), scalar_files, key)
    figure.tight_layout()
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file)
    return str(out_file)
