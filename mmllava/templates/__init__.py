"""Chat templates as data: what each is (:mod:`.base`), the original
LLaVA ones (:mod:`.llava`, :mod:`.llava_v0`), ChatML (:mod:`.chatml`,
:mod:`.chatml_direct`), the ``[INST]`` ones of Llama-2 and Mistral
(:mod:`.inst`), Llama-3's (:mod:`.llama3`), and the names configs use for
them."""
from mmllava.templates.base import GPT, HUMAN, ChatTemplate, cut_at_stop
from mmllava.templates.chatml import (CHATML_TEMPLATES, IM_END, IM_START,
                                      QWEN_1_5, QWEN_SYSTEM, SYSTEM_FRAME)
from mmllava.templates.chatml_direct import CHATML_DIRECT
from mmllava.templates.inst import INST_TEMPLATES
from mmllava.templates.llama3 import LLAVA_LLAMA_3
from mmllava.templates.llava import (LLAVA_SYSTEM, LLAVA_TEMPLATES,
                                     VICUNA_SYSTEM)
from mmllava.templates.llava_v0 import LLAVA_V0

#: Every template, by the name configs give.
TEMPLATES = {template.name: template
             for template in [*LLAVA_TEMPLATES, QWEN_1_5, LLAVA_V0,
                                  *INST_TEMPLATES, CHATML_DIRECT,
                                  LLAVA_LLAMA_3]}


def get_template(name: str) -> ChatTemplate:
    """Return the template called ``name``; unknown names fail loudly."""
    if name not in TEMPLATES:
        raise KeyError(f'Unknown chat template {name!r}; known templates: '
                       f'{sorted(TEMPLATES)}')
    return TEMPLATES[name]


__all__ = ['CHATML_TEMPLATES', 'GPT', 'HUMAN', 'IM_END', 'IM_START',
           'LLAVA_SYSTEM', 'QWEN_SYSTEM', 'SYSTEM_FRAME', 'TEMPLATES',
           'VICUNA_SYSTEM', 'ChatTemplate', 'cut_at_stop', 'get_template']
