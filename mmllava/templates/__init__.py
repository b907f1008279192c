"""Chat templates as data: what each is (:mod:`.base`), the original
LLaVA ones (:mod:`.llava`), ChatML (:mod:`.chatml`), and the names configs
use for them."""
from mmllava.templates.base import GPT, HUMAN, ChatTemplate, cut_at_stop
from mmllava.templates.chatml import (CHATML_TEMPLATES, IM_END, IM_START,
                                      QWEN_1_5, QWEN_SYSTEM, SYSTEM_FRAME)
from mmllava.templates.llava import (LLAVA_SYSTEM, LLAVA_TEMPLATES,
                                     VICUNA_SYSTEM)

#: Every template, by the name configs give.
TEMPLATES = {template.name: template
             for template in [*LLAVA_TEMPLATES, QWEN_1_5]}


def get_template(name: str) -> ChatTemplate:
    """Return the template called ``name``; unknown names fail loudly."""
    if name not in TEMPLATES:
        raise KeyError(f'Unknown chat template {name!r}; known templates: '
                       f'{sorted(TEMPLATES)}')
    return TEMPLATES[name]


__all__ = ['CHATML_TEMPLATES', 'GPT', 'HUMAN', 'IM_END', 'IM_START',
           'LLAVA_SYSTEM', 'QWEN_SYSTEM', 'SYSTEM_FRAME', 'TEMPLATES',
           'VICUNA_SYSTEM', 'ChatTemplate', 'cut_at_stop', 'get_template']
