"""tools/analysis/decode_breakdown.py runs and reports every part of a
decode step, at each batch size, on both kernels."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmllava.testing.timeouts import scaled_timeout

TOOL = Path(__file__).resolve().parents[2] / 'tools/analysis/decode_breakdown.py'
PARTS = ('prefill (whole prompt)', 'decode step in generate',
         "generate's own work", 'bare step (forward + argmax)',
         'decoder linear layers', 'LM head', 'attention over the cache',
         'rest (norms, rotary, adds, Python)',
         'decode step in the lean loop')


@pytest.mark.slow
def test_quick_run_reports_each_part():
    run = subprocess.run(
        [sys.executable, str(TOOL), '--quick', '--repeats', '1',
         '--new-tokens', '4', '--prompt-tokens', '16', '--batch-sizes',
         '1,2'], capture_output=True, text=True,
        timeout=scaled_timeout(300))
    assert run.returncode == 0, run.stderr
    tables = run.stdout.split('\nbatch ')[1:]
    assert [table.split(':')[0] for table in tables] == ['1', '2']
    for table in tables:
        for part in PARTS:
            row = re.search(rf'\| *{re.escape(part)} \| ([-\d.]+)', table)
            assert row, (part, table)
        # Measured times, not placeholders: the step and its parts are
        # positive.
        for part in PARTS[:2] + PARTS[3:7] + PARTS[8:]:
            value = float(re.search(rf'\| *{re.escape(part)} \| ([-\d.]+)',
                                    table).group(1))
            assert value > 0, (part, table)
        for kernels in ('torch', 'packed'):
            for loop in ("transformers' loop", 'lean loop'):
                assert re.search(rf'{kernels}, {loop}: [\d.]+ new tokens/s',
                                 table), (kernels, loop, table)
