"""The ``[INST]`` templates of LLaVA-1.6: ``llava_llama_2`` (Llama-2-chat)
and ``mistral_instruct`` (LLaVA-1.6-Mistral-7B).

Both are the official ``SeparatorStyle.LLAMA_2`` (``conv_llava_llama_2``,
``conv_mistral_instruct``) and train as the official ``preprocess_llama_2``
does. Rendered, a two-round conversation reads::

    llava_llama_2:    [INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{q1} [/INST] {a1} </s>
                      <s>[INST] {q2} [/INST] {a2} </s>
    mistral_instruct: [INST] {q1} [/INST] {a1} </s>[INST] {q2} [/INST] {a2} </s>

(one line each; the tokenizer adds the leading ``<s>``; ``<s>`` and ``</s>``
in the template are the special tokens). What ``preprocess_llama_2`` learns:
each answer from the space after ``[/INST]`` on, the blank before ``</s>``
and the ``</s>``; the ``<s>`` that opens a later round and every
``[INST] ... [/INST]`` are masked. Its masks come from token counts
(``len(tokenize(instruction + '[/INST] ')) - 2``, one BOS and the lone
``▁`` of the trailing blank); ours come from the characters of the answer,
and give the same labels wherever the counts are right.

Where the official counts give up, it zeroes the whole sample ("tokenization
mismatch") and ours keeps its labels: a message holding ``[/INST] `` or
``</s>`` (as text, ``special_tokens_in_content='text'``, the default, it is
no separator), or a conversation ending with a question (it is not learnt).
"""
from mmllava.templates.base import ChatTemplate

#: The system message of ``conv_llava_llama_2``.
LLAVA_LLAMA_2_SYSTEM = (
    'You are a helpful language and vision assistant. You are able to '
    'understand the visual content that the user provides, and assist the '
    'user with a variety of tasks using natural language.')


def _wrap_system(system: str) -> str:
    """Llama-2's system block, inside the first ``[INST]``."""
    return f'<<SYS>>\n{system}\n<</SYS>>\n\n'


#: LLaVA's ``llava_llama_2`` (``conv_llava_llama_2``).
LLAVA_LLAMA_2 = ChatTemplate(
    name='llava_llama_2', system='',
    first_user='[INST] ' + _wrap_system(LLAVA_LLAMA_2_SYSTEM)
    + '{content} [/INST]',
    user='<s>[INST] {content} [/INST]', assistant_prefix='',
    assistant=' {content} </s>', stop='</s>')

#: LLaVA-1.6-Mistral-7B's ``mistral_instruct`` (``conv_mistral_instruct``:
#: no system message, no ``<s>`` between rounds).
MISTRAL_INSTRUCT = ChatTemplate(
    name='mistral_instruct', system='',
    user='[INST] {content} [/INST]', assistant_prefix='',
    assistant=' {content} </s>', stop='</s>')

INST_TEMPLATES = [LLAVA_LLAMA_2, MISTRAL_INSTRUCT]
