"""Llama-3's chat format as LLaVA-NeXT uses it: ``llava_llama_3``
(``conv_llava_llama_3``, ``SeparatorStyle.LLAMA_3``, LLaVA-NeXT-8B).

A prompt, as Meta-Llama-3-8B-Instruct's chat template renders it::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n{system}<|eot_id|>
    <|start_header_id|>user<|end_header_id|>\\n\\n<image>\\n{q1}<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n{a1}<|eot_id|>

(no newlines between the lines; the tokenizer adds ``<|begin_of_text|>``;
messages are stripped, the template's ``trim``). Training samples are
tokenized by :func:`mmllava.conversation_llama3.tokenize_llama3_training`,
which gives the labels of LLaVA-NeXT's ``preprocess_llama3``.
"""
from mmllava.templates.base import ChatTemplate

BEGIN_OF_TEXT = '<|begin_of_text|>'
START_HEADER, END_HEADER = '<|start_header_id|>', '<|end_header_id|>'
EOT = '<|eot_id|>'
#: The system message of ``conv_llava_llama_3`` and ``preprocess_llama3``.
LLAMA_3_SYSTEM = (
    'You are a helpful language and vision assistant. You are able to '
    'understand the visual content that the user provides, and assist the '
    'user with a variety of tasks using natural language.')


def header(role: str) -> str:
    """The text that opens a Llama-3 message."""
    return START_HEADER + role + END_HEADER + '\n\n'


LLAVA_LLAMA_3 = ChatTemplate(
    name='llava_llama_3',
    system=header('system') + LLAMA_3_SYSTEM + EOT,
    user=header('user') + '{content}' + EOT,
    assistant_prefix=header('assistant'),
    assistant='{content}' + EOT,
    stop=EOT, turn_by_turn=True, strip_messages=True)
