"""``mmllava/analysis/benchmark/serving.py`` on the tests' small model: both
schedulers answer every client, equal to the answers generated alone, and
the table reports the ratios (the timings themselves are not checked)."""
import pytest

from mmllava.analysis.benchmark.serving import (benchmark_serving,
                                                format_serving_table)

pytestmark = pytest.mark.usefixtures('one_thread', 'in_workspace')


def test_static_and_continuous_give_the_answers_generated_alone(
        serving_model, model_workspace):
    result = benchmark_serving(serving_model, str(model_workspace),
                               num_clients=4, per_client=2, max_batch_size=4,
                               arrival_gap_s=0.01)
    assert result['equal']
    assert result['requests'] == 8
    for name in ('static', 'continuous'):
        run = result[name]
        assert run['tokens'] > 8
        assert 0 < run['ttft_p50_s'] <= run['ttft_p95_s']
        assert run['ttft_p95_s'] <= run['latency_p95_s']
        assert max(run['batch_sizes']) <= 4
    assert result['static']['tokens'] == result['continuous']['tokens']
    table = format_serving_table(result)
    assert '| static |' in table and '| continuous |' in table
    assert 'greedy answers equal to alone: yes' in table
    assert f'TTFT p95 {result["ttft_p95_ratio"]:.2f}x' in table
