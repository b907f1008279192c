"""A request's system message replaces the system prompt of each template
that has one, wherever the template keeps it."""
from types import SimpleNamespace

import pytest

from mmllava.serving.engine import GenerationEngine
from mmllava.templates import get_template

with_system = GenerationEngine.with_system
ENGINE = SimpleNamespace(special_tokens=['</s>', '<s>'])


@pytest.mark.parametrize('name', ['vicuna_v1', 'llava_v1', 'qwen_1_5',
                                  'llava_v0', 'chatml_direct',
                                  'llava_llama_3', 'llava_llama_2'])
def test_the_system_message_takes_the_template_prompts_place(name):
    template = get_template(name)
    replaced = with_system(ENGINE, template, 'Speak like a pirate.')
    before = template.system + (template.first_user or '')
    after = replaced.system + (replaced.first_user or '')
    assert 'Speak like a pirate.' in after
    assert 'Speak like a pirate.' not in before
    # Only the prompt changed: the frame around it is the template's.
    assert replaced.user == template.user
    assert replaced.assistant == template.assistant


def test_a_template_without_a_system_prompt_says_so():
    with pytest.raises(ValueError, match="'mistral_instruct' has no system"):
        with_system(ENGINE, get_template('mistral_instruct'), 'Be brief.')


def test_special_tokens_stay_out_of_the_system_message():
    with pytest.raises(ValueError, match="special token '</s>'"):
        with_system(ENGINE, get_template('vicuna_v1'), 'end </s> here')
