"""``tools/analysis/benchmark_parts/serving.py`` on the tests' small model:
both schedulers answer every client, equal to the answers generated alone,
and the table reports the ratios (the timings themselves are not checked)."""
import importlib
from pathlib import Path

import pytest

#: The benchmark's parts live beside their tool, outside the package.
TOOL_DIR = Path(__file__).resolve().parents[2] / 'tools/analysis'

pytestmark = pytest.mark.usefixtures('one_thread', 'in_workspace')


@pytest.fixture
def serving_part(monkeypatch):
    """``benchmark_parts.serving``, found as its tool finds it: through the
    tool's folder on ``sys.path``."""
    monkeypatch.syspath_prepend(str(TOOL_DIR))
    return importlib.import_module('benchmark_parts.serving')


@pytest.mark.slow
def test_static_and_continuous_give_the_answers_generated_alone(
        serving_part, serving_model, model_workspace):
    result = serving_part.benchmark_serving(
        serving_model, str(model_workspace), num_clients=4, per_client=2,
        max_batch_size=4, arrival_gap_s=0.01)
    assert result['equal']
    assert result['requests'] == 8
    for name in ('static', 'continuous'):
        run = result[name]
        assert run['tokens'] > 8
        assert 0 < run['ttft_p50_s'] <= run['ttft_p95_s']
        assert run['ttft_p95_s'] <= run['latency_p95_s']
        assert max(run['batch_sizes']) <= 4
    assert result['static']['tokens'] == result['continuous']['tokens']
    table = serving_part.format_serving_table(result)
    assert '| static |' in table and '| continuous |' in table
    assert 'greedy answers equal to alone: yes' in table
    assert f'TTFT p95 {result["ttft_p95_ratio"]:.2f}x' in table
