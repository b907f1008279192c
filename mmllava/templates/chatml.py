"""ChatML, the chat format of Qwen-1.5 chat models: LLaVA-NeXT's
``qwen_1_5``. Its training tokenization is in
:mod:`mmllava.conversation_chatml`."""
from mmllava.templates.base import ChatTemplate

IM_START, IM_END = '<|im_start|>', '<|im_end|>'
#: The system message of LLaVA-NeXT's ``conv_qwen`` and ``preprocess_qwen``.
QWEN_SYSTEM = 'You are a helpful assistant.'
#: How ChatML frames a system message: a turn of its own.
SYSTEM_FRAME = (IM_START + 'system\n', IM_END + '\n')


#: LLaVA-NeXT's ``qwen_1_5`` (``conv_qwen``, ``SeparatorStyle.CHATML``).
QWEN_1_5 = ChatTemplate(
    name='qwen_1_5',
    system=SYSTEM_FRAME[0] + QWEN_SYSTEM + SYSTEM_FRAME[1],
    user=IM_START + 'user\n{content}' + IM_END + '\n',
    assistant_prefix=IM_START + 'assistant\n',
    assistant='{content}' + IM_END + '\n',
    stop=IM_END,
    turn_by_turn=True)

#: Templates rendered in ChatML (llava-hf export frames their system turn).
CHATML_TEMPLATES = frozenset({QWEN_1_5.name})
