"""gpu_check's rows: one per check or figure, printed as one table and saved
as json."""
from dataclasses import asdict, dataclass, field

#: A check's outcome; ``fail`` makes the run exit non-zero, ``skipped``
#: does not.
PASS, FAIL, SKIPPED = 'pass', 'fail', 'skipped'
#: A speed figure's: against its target on a full CUDA run, only
#: ``measured`` elsewhere (tiny or CPU figures mean nothing).
MET, MISSED, MEASURED = 'met', 'missed', 'measured'
HEADER = ('check', 'status', 'measured', 'tolerance / target')


@dataclass
class Row:
    """One line of the table.

    Args:
        name (str): What is checked or measured.
        status (str): One of the statuses above.
        value (str): What was measured, as shown.
        tolerance (str): What a check allows, or a figure's target.
        reason (str): Why it was skipped or failed.
        kind (str): ``'check'`` or ``'speed'``.
        detail (dict): The numbers behind it (losses per step, ...), saved
            in the json only.
    """

    name: str
    status: str
    value: str = '-'
    tolerance: str = '-'
    reason: str = ''
    kind: str = 'check'
    detail: dict = field(default_factory=dict)

    @property
    def status_cell(self) -> str:
        return f'{self.status}: {self.reason}' if self.reason else self.status

    def to_dict(self) -> dict:
        return dict(asdict(self), status_cell=self.status_cell)


def skipped(name: str, reason: str, tolerance: str = '-',
            kind: str = 'check') -> Row:
    return Row(name, SKIPPED, tolerance=tolerance, reason=reason, kind=kind)


def judged(met: bool, judge: bool) -> str:
    """A figure's status against its target."""
    if not judge:
        return MEASURED
    return MET if met else MISSED


def format_table(rows: list[Row]) -> str:
    """A markdown table."""
    lines = ['| ' + ' | '.join(HEADER) + ' |', '|' + '---|' * len(HEADER)]
    for row in rows:
        cells = (row.name, row.status_cell, row.value, row.tolerance)
        lines.append('| ' + ' | '.join(cell.replace('|', '/')
                                       for cell in cells) + ' |')
    return '\n'.join(lines)


def failed(rows: list[Row]) -> list[str]:
    return [row.name for row in rows if row.status == FAIL]

