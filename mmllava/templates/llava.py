"""The templates of the original LLaVA code: ``plain`` (stage 1),
``vicuna_v1`` and ``llava_v1`` (stage 2)."""
from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.templates.base import ChatTemplate

VICUNA_SYSTEM = ('A chat between a curious user and an artificial '
                 'intelligence assistant. The assistant gives helpful, '
                 "detailed, and polite answers to the user's questions.")
LLAVA_SYSTEM = ('A chat between a curious human and an artificial '
                'intelligence assistant. The assistant gives helpful, '
                "detailed, and polite answers to the human's questions.")

#: In the order they are listed.
LLAVA_TEMPLATES = [
        # Stage 1 (feature alignment): the image, then the caption.
        ChatTemplate(
            name='plain', system='', user=IMAGE_PLACEHOLDER,
            assistant_prefix='', assistant='{content}\n', stop='\n',
            single_turn_with_image=True),
        # Stage 2 (instruction tuning) of LLaVA-1.5 and LLaVA v1.
        ChatTemplate(
            name='vicuna_v1', system=VICUNA_SYSTEM + ' ',
            user='USER: {content} ', assistant_prefix='ASSISTANT:',
            assistant=' {content}</s>', stop='</s>'),
        ChatTemplate(
            name='llava_v1', system=LLAVA_SYSTEM + ' ',
            user='USER: {content} ', assistant_prefix='ASSISTANT:',
            assistant=' {content}</s>', stop='</s>'),
]
