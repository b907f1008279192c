"""What a tokenized training sample learns, as text: the test helper of the
template tests, which compare it with the official code's labels."""
from typing import Sequence


def supervised_runs(ids: Sequence[int], labels: Sequence[int], tokenizer,
                    ignore_index: int = -100) -> list[str]:
    """The decoded text of each run of supervised tokens (labels other than
    ``ignore_index``), in order.

    Raises:
        AssertionError: Where a supervised label is not its token's id (a
            label shifted against the ids).
    """
    runs, run = [], []
    for position, (token_id, label) in enumerate(zip(ids, labels)):
        if label != ignore_index:
            assert label == token_id, (
                f'label {label} at position {position} is not its token '
                f'{token_id}')
            run.append(token_id)
        elif run:
            runs.append(tokenizer.decode(run))
            run = []
    if run:
        runs.append(tokenizer.decode(run))
    return runs
