"""Reading a data sample's fields in a metric."""
from typing import Any


def required_field(sample: Any, key: str, metric: str) -> Any:
    """``sample[key]``, failing with the metric, the sample and the key
    named when it is missing.

    mmengine's ``Evaluator`` hands metrics plain dicts (``to_dict()`` of
    each data sample); direct calls may pass data samples. Both have
    ``get``.
    """
    value = sample.get(key)
    if value is None:
        raise ValueError(
            f'{metric} needs "{key}" in every data sample; sample '
            f'{sample.get("sample_id")!r} has none (check the dataset and '
            'the meta_keys of PackLLaVAInputs).')
    return value
