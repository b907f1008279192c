"""Generated answers that say whether generation cut them."""
from typing import Optional, Sequence


class GeneratedText(str):
    """An answer as text, which also says whether it was cut: generation
    stopped at its token budget (``max_new_tokens``) before the model ended
    the answer (no end of sequence, no stop text).

    It is a ``str`` everywhere a string is expected (comparison, json,
    joining); ``cut`` is read where a cut answer must be reported.

    Args:
        text (str): The answer.
        cut (bool): Whether it was cut. Defaults to False.
    """

    cut: bool

    def __new__(cls, text: str, cut: bool = False) -> 'GeneratedText':
        answer = super().__new__(cls, text)
        answer.cut = cut
        return answer


def ended(new_tokens: Sequence[int], raw_text: str, eos_token_id: Optional[int],
          stop: str) -> bool:
    """Whether the model ended an answer itself: it generated the end of
    sequence, or the template's stop text (``raw_text`` is the answer
    decoded with its special tokens, so a special stop token such as
    ``<|im_end|>`` shows)."""
    return eos_token_id in new_tokens or (bool(stop) and stop in raw_text)
