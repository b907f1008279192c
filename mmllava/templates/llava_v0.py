"""``llava_v0``, the template of the LLaVA v0 delta weights (the April 2023
release that ``apply_delta`` turns into a model).

The official code has two spellings of it. The training text, which the v0
weights learnt (``preprocess``'s default branch, ``_add_speaker_and_signal``
with ``conv_llava_v0``'s system and roles)::

    {system}\\n\\n### Human: {q1}\\n### Assistant: {a1}\\n### Human: ...\\n###

(with a blank after the last ``###``), and the inference prompt of
``conv_llava_v0.get_prompt()`` (``SeparatorStyle.SINGLE``), which drops the
newlines and blanks: ``{system}###Human: {q1}###Assistant:``. This template
is the training text, for training and generation alike, so a model is asked
in the format it learnt; generation stops at ``###``.

What is learnt: each answer with the newline and ``### `` after it (the
signal that ends a turn, which is where generation stops); the blank after
``###`` is one token with the next question's ``Human``, which is learnt
with it. The ids are the official training ids. The labels are not the
official ones: ``_mask_targets`` counts every turn's tokens from a
tokenization of that turn alone, its BOS included, so its masks drift one
token further from the text per turn (it learns ``### Human`` of the first
question, ``Assistant:`` before each answer and, late, the next question's
first word); ours mask by the characters of the text and do not drift.
"""
from mmllava.templates.base import ChatTemplate
from mmllava.templates.llava import LLAVA_SYSTEM

LLAVA_V0 = ChatTemplate(
    name='llava_v0', system=LLAVA_SYSTEM + '\n\n### ',
    user='Human: {content}\n### ', assistant_prefix='Assistant:',
    assistant=' {content}\n### ', stop='###')
