"""``chatml_direct``, the template of LLaVA-1.6-34B (Nous-Hermes-2-Yi-34B):
the official ``conv_chatml_direct`` (``SeparatorStyle.MPT``), trained by
``preprocess_mpt``.

Its turns follow each other with no newline between ``<|im_end|>`` and the
next ``<|im_start|>``, unlike ``qwen_1_5``::

    <|im_start|>system\\nAnswer the questions.<|im_end|><|im_start|>user\\n
    <image>\\nWhat is this?<|im_end|><|im_start|>assistant\\nA cat.<|im_end|>

(one line). What is learnt: each answer and its ``<|im_end|>``; a
newline or blank that opens an answer and merges with the newline after
``assistant`` into one token makes that token learnt too.

The official ``preprocess_mpt`` splits the prompt into rounds at
``<|im_end|>`` and counts each round's tokens, but never counts the
``<|im_end|>`` that closes the last round; its count ends one token short
of the sample, so its mismatch branch ("tokenization mismatch") zeroes every
sample's labels, with any tokenizer. Were it not for that branch its masks
would still be off (the closing ``<|im_end|>`` unlearnt, the token ending
``assistant\n`` learnt: its ``- 1`` takes away a BOS that a tokenizer
without one does not add). Our ids are the official ones; our labels are
what its masks aim at.
"""
from mmllava.templates.base import ChatTemplate
from mmllava.templates.chatml import IM_END, IM_START

#: The system message of ``conv_chatml_direct``.
CHATML_DIRECT_SYSTEM = 'Answer the questions.'

CHATML_DIRECT = ChatTemplate(
    name='chatml_direct',
    system=IM_START + 'system\n' + CHATML_DIRECT_SYSTEM + IM_END,
    user=IM_START + 'user\n{content}' + IM_END,
    assistant_prefix=IM_START + 'assistant\n',
    assistant='{content}' + IM_END,
    stop=IM_END)
