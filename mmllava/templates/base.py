"""What a chat template is: the roles of LLaVA records and the
:class:`ChatTemplate` dataclass."""
from dataclasses import dataclass
from typing import Optional


#: Roles as they are spelled in LLaVA json records.
HUMAN, GPT = 'human', 'gpt'


@dataclass(frozen=True)
class ChatTemplate:
    """How a conversation becomes a prompt.

    Args:
        name (str): The name configs refer to.
        system (str): Text that opens every prompt, separator included.
        user (str): A user turn; ``{content}`` (once, the only field)
            stands for the message. A format without ``{content}`` drops the
            message (``plain`` keeps only the image).
        assistant_prefix (str): The unsupervised text that opens an assistant
            turn. A generation prompt ends with it.
        assistant (str): The supervised rest of an assistant turn;
            ``{content}`` stands for the answer.
        stop (str): Text at which generation stops.
        single_turn_with_image (bool): Whether a conversation must be one
            image-bearing question and one answer (``plain``).
        turn_by_turn (bool): Whether training conversations are tokenized
            turn by turn, piece by piece, as the official ChatML and Llama-3
            preprocessing do (:mod:`mmllava.conversation_chatml`,
            :mod:`mmllava.conversation_llama3`), rather than rendered whole.
            Defaults to False.
        first_user (str, optional): The first user turn, where it differs
            from later ones (Llama-2 puts the system message inside the
            first ``[INST]``); None: as ``user``. Defaults to None.
        strip_messages (bool): Whether messages are stripped of surrounding
            blanks before they are rendered (Llama-3's chat template
            ``trim``s them). Defaults to False.
    """

    name: str
    system: str
    user: str
    assistant_prefix: str
    assistant: str
    stop: str
    single_turn_with_image: bool = False
    turn_by_turn: bool = False
    first_user: Optional[str] = None
    strip_messages: bool = False


def cut_at_stop(text: str, stop: str) -> str:
    """Generated text up to a template's ``stop`` text, stripped."""
    return text.lstrip().split(stop)[0].strip()
