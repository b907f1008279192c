"""The benchmark's table: one row per figure, mmllava beside the baseline
at random batching and at its best, and their ratios."""
import json
from typing import Optional

COLUMNS = ('mmllava', 'baseline_random', 'baseline_best')
HEADER = ('figure', 'mmllava', 'baseline (random)', 'baseline (best)',
          'mmllava / random', 'mmllava / best')


def row(figure: str, mmllava: float, baseline_random: Optional[float],
        baseline_best: Optional[float]) -> dict:
    """A row; each ratio is mmllava's figure over that baseline column's
    (None where the column does not apply)."""
    return dict(
        figure=figure, mmllava=mmllava, baseline_random=baseline_random,
        baseline_best=baseline_best,
        ratio_random=None if baseline_random is None
        else mmllava / baseline_random,
        ratio_best=None if baseline_best is None else mmllava / baseline_best)


def training_rows(train: dict, best: str, unpacked: list[str]) -> list[dict]:
    """Training figures of mmllava's ``best`` setting, then its ``unpacked``
    settings' throughput (where each gain comes from)."""
    figures = (('train samples/s', 'samples_per_s'),
               ('train supervised tokens/s', 'supervised_tokens_per_s'),
               ('train padding fraction', 'padding_fraction'),
               ('train peak memory (MB)', 'peak_memory_mb'),
               ('train final loss', 'final_loss'),
               ('train MFU (%)', 'mfu_percent'))
    rows = [row(f'{figure} [{best}]', train[best][key],
                train['baseline_random'][key], train['baseline_best'][key])
            for figure, key in figures]
    for name in unpacked:
        for figure, key in figures[:3]:
            rows.append(row(f'{figure} [{name}]', train[name][key],
                            train['baseline_random'][key],
                            train['baseline_best'][key]))
    return rows


def format_value(value: Optional[float]) -> str:
    if value is None:
        return '-'
    if value == 0 or abs(value) >= 100:
        return f'{value:.0f}'
    return f'{value:.3g}'


def format_table(rows: list[dict]) -> str:
    """A markdown table."""
    lines = ['| ' + ' | '.join(HEADER) + ' |',
             '|' + '---|' * len(HEADER)]
    for item in rows:
        cells = [item['figure']] + [format_value(item[key]) for key in (
            *COLUMNS, 'ratio_random', 'ratio_best')]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def save(path: str, results: dict) -> None:
    with open(path, 'w') as file:
        json.dump(results, file, indent=2)
