"""Timeouts for tests that start processes, scaled to the machine.

A fixed timeout that holds on an idle machine fails on a loaded one (a CI
runner, two test sessions at once). Each timeout is written as measured on an
idle 2-core machine, with room to spare, and scaled when the process starts.
"""
import os

#: Multiplies every scaled timeout (e.g. 3 on a slow emulated machine).
SCALE_ENV = 'MMLLAVA_TEST_TIMEOUT_SCALE'


def scaled_timeout(seconds: float) -> float:
    """``seconds`` times the machine's current load per core (at least 1)
    and :data:`SCALE_ENV` (default 1)."""
    load_per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * max(1.0, load_per_core) * float(
        os.environ.get(SCALE_ENV, '1'))
