"""The lean decoding loop: transformers' own ``generate`` loop is the
reference, token for token."""
import pytest
import torch
from transformers import (LlamaConfig, LlamaForCausalLM, LogitsProcessor,
                          LogitsProcessorList, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM, StoppingCriteria,
                          StoppingCriteriaList)
from transformers.generation.streamers import BaseStreamer

from mmllava.models import decode_loop
from mmllava.models.cpu_generation import fast_cpu_generation
from mmllava.models.decode_loop import (lean_decode_unsupported,
                                        lean_decoding)
from mmllava.models.packed_linears import onednn_available

WIDTH = 64
SHAPE = dict(vocab_size=120, hidden_size=WIDTH, intermediate_size=96,
             num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=256)
ARCHITECTURES = {
    'llama': (LlamaForCausalLM, LlamaConfig, {}),
    # Biases on q/k/v, as Qwen2 has them.
    'qwen2': (Qwen2ForCausalLM, Qwen2Config, {}),
    # Each head normalised before the rotary embedding; head_dim set apart.
    'qwen3': (Qwen3ForCausalLM, Qwen3Config, dict(head_dim=24)),
    'mistral': (MistralForCausalLM, MistralConfig,
                dict(sliding_window=None)),
    # rotary scaling: the model's own rotary module computes it.
    'llama_rope_scaled': (LlamaForCausalLM, LlamaConfig, dict(
        rope_scaling=dict(rope_type='linear', factor=2.0))),
}


def build(name: str, seed: int = 0, **overrides):
    model_class, config_class, extra = ARCHITECTURES[name]
    torch.manual_seed(seed)
    model = model_class(config_class(**{**SHAPE, **extra,
                                        **overrides})).eval()
    with torch.no_grad():
        # Clear greedy winners, not rounding noise.
        model.lm_head.weight.normal_(0, 1)
    return model


def left_padded_prompts(batch: int = 3, length: int = 7, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.randn(batch, length, WIDTH, generator=generator)
    ids = torch.randint(3, SHAPE['vocab_size'], (batch, length),
                        generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, :3] = 0
    if batch > 2:
        mask[2, :1] = 0
    return embeds, ids, mask


def both_loops(model, **kwargs):
    """``model.generate(**kwargs)`` by transformers' loop and, with a spy
    that counts its calls, by the lean loop."""
    calls = []
    original = decode_loop.lean_decode

    def spy(*args, **inner):
        calls.append(1)
        return original(*args, **inner)

    reference = model.generate(**kwargs)
    decode_loop.lean_decode = spy
    try:
        with lean_decoding(model) as lean:
            result = model.generate(**kwargs)
    finally:
        decode_loop.lean_decode = original
    assert lean and calls == [1]
    return reference, result


@pytest.mark.parametrize('name', ARCHITECTURES)
@pytest.mark.parametrize('prompt', ['inputs_embeds', 'input_ids'])
def test_greedy_tokens_equal_transformers_loop(name, prompt):
    model = build(name)
    embeds, ids, mask = left_padded_prompts()
    inputs, prompt_length = (dict(inputs_embeds=embeds), 0) \
        if prompt == 'inputs_embeds' else (dict(input_ids=ids), ids.shape[1])
    settings = dict(attention_mask=mask, max_new_tokens=10, do_sample=False,
                    pad_token_id=0)
    first = model.generate(**inputs, eos_token_id=None, **settings)
    # A token row 1 reaches after its first step becomes the end of text,
    # so that rows end at different steps and are padded after.
    steps = first[1, prompt_length:].tolist()
    eos = next(token for token in steps[1:] if token != steps[0])
    settings.update(eos_token_id=eos, min_new_tokens=1)
    reference, result = both_loops(model, **inputs, **settings)
    assert (reference[:, prompt_length:] == 0).any(), 'no row ended early'
    assert torch.equal(result, reference)


def test_sampling_draws_the_same_tokens_from_the_same_seed():
    model = build('llama')
    embeds, _, mask = left_padded_prompts()
    settings = dict(inputs_embeds=embeds, attention_mask=mask,
                    max_new_tokens=8, do_sample=True, top_k=20,
                    temperature=0.7, pad_token_id=0, eos_token_id=2)
    torch.manual_seed(5)
    reference = model.generate(**settings)
    torch.manual_seed(5)
    with lean_decoding(model):
        result = model.generate(**settings)
    assert torch.equal(result, reference)


class Recorder(BaseStreamer):

    def __init__(self) -> None:
        self.puts, self.ended = [], False

    def put(self, value):
        self.puts.append(value.tolist())

    def end(self):
        self.ended = True


class BanToken(LogitsProcessor):

    def __init__(self, token: int) -> None:
        self.token = token

    def __call__(self, input_ids, scores):
        scores[:, self.token] = -float('inf')
        return scores


class StopAfter(StoppingCriteria):

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0], ), input_ids.shape[1] >=
                          self.steps, dtype=torch.bool)


def test_streamer_processors_and_criteria_behave_as_in_generate():
    """The server's way: a streamer, a logits processor and a stopping
    criterion of its own."""
    model = build('llama')
    embeds, _, _ = left_padded_prompts(batch=1)
    plain = model.generate(inputs_embeds=embeds, max_new_tokens=6,
                           do_sample=False, pad_token_id=0, eos_token_id=2)
    banned = int(plain[0, 1])
    runs = []
    for lean in (False, True):
        streamer = Recorder()
        settings = dict(
            inputs_embeds=embeds, max_new_tokens=12, do_sample=False,
            pad_token_id=0, eos_token_id=2, streamer=streamer,
            logits_processor=LogitsProcessorList([BanToken(banned)]),
            stopping_criteria=StoppingCriteriaList([StopAfter(5)]))
        if lean:
            with lean_decoding(model):
                result = model.generate(**settings)
        else:
            result = model.generate(**settings)
        runs.append((result, streamer))
    (reference, expected), (result, streamer) = runs
    assert reference.shape == (1, 5) and banned not in reference.tolist()
    assert torch.equal(result, reference)
    assert streamer.puts == expected.puts and streamer.ended
    # The prompt's ids (none with embeddings) first, then one per step.
    assert streamer.puts[0] == [[]] and len(streamer.puts) == 6


@pytest.mark.skipif(not onednn_available(), reason='no oneDNN')
def test_packed_weights_and_the_lean_loop_give_transformers_answers():
    model = build('llama')
    embeds, _, mask = left_padded_prompts()
    settings = dict(inputs_embeds=embeds, attention_mask=mask,
                    max_new_tokens=10, do_sample=False, pad_token_id=0,
                    eos_token_id=2)
    reference = model.generate(**settings)
    with fast_cpu_generation(model, only_if_faster=False) as switched:
        result = model.generate(**settings)
    assert switched.packed_layers == 2 * 7 + 1 and switched.lean_loop
    assert torch.equal(result, reference)


def test_calls_it_does_not_do_run_transformers_loop(monkeypatch):
    model = build('llama')
    embeds, _, mask = left_padded_prompts()
    monkeypatch.setattr(decode_loop, 'lean_decode',
                        lambda *args, **kwargs: pytest.fail('lean loop ran'))
    settings = dict(inputs_embeds=embeds, attention_mask=mask,
                    max_new_tokens=4, pad_token_id=0, eos_token_id=2)
    for extra in (dict(num_beams=2), dict(return_dict_in_generate=True),
                  dict(use_cache=False)):
        reference = model.generate(**settings, **extra)
        with lean_decoding(model):
            result = model.generate(**settings, **extra)
        sequences = getattr(result, 'sequences', result)
        assert torch.equal(sequences, getattr(reference, 'sequences',
                                              reference))


@pytest.mark.parametrize('change, reason', [
    (lambda model: model.set_attn_implementation('eager'),
     "its attention is 'eager', not 'sdpa'"),
    (lambda model: model.train(), 'it is in training mode'),
])
def test_unsupported_models_say_why_and_keep_transformers_loop(
        change, reason, monkeypatch):
    logged = []
    monkeypatch.setattr(decode_loop, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    model = build('llama')
    change(model)
    assert lean_decode_unsupported(model) == reason
    for _ in range(2):
        with lean_decoding(model) as lean:
            assert not lean and 'generate' not in vars(model)
    # Once per model.
    assert logged == [f"Decoding with transformers' loop: {reason}."]


def test_other_architectures_and_sliding_windows_are_not_taken():
    window = build('mistral', sliding_window=4)
    assert lean_decode_unsupported(window) == \
        'layer 0 attends through a sliding window of 4'

    class Custom(LlamaForCausalLM):
        pass

    custom = Custom(LlamaConfig(**SHAPE))
    assert lean_decode_unsupported(custom).startswith(
        'Custom is not one of')


def test_blocks_nest_and_put_back_what_they_found():
    model = build('llama')
    own_generate = model.generate
    model.generate = own_generate  # an instance attribute of its own
    with lean_decoding(model):
        with lean_decoding(model):
            inner = model.generate
        assert model.generate is inner
    assert vars(model)['generate'] is own_generate
    del model.generate
    with lean_decoding(model):
        pass
    assert 'generate' not in vars(model)


def test_stop_strings_and_several_sequences_per_prompt(tokenizer):
    """A stop string (the real LLaMA tokenizer decodes the steps) and
    ``num_return_sequences`` sampling, each equal to transformers' loop."""
    model = build('llama', vocab_size=len(tokenizer))
    embeds, _, _ = left_padded_prompts(batch=1)
    settings = dict(inputs_embeds=embeds, max_new_tokens=12, do_sample=False,
                    pad_token_id=tokenizer.eos_token_id,
                    eos_token_id=tokenizer.eos_token_id)
    free = tokenizer.decode(model.generate(**settings)[0, 3:6])
    stop = free.strip()[:3]
    assert stop, free
    reference, result = both_loops(model, **settings, stop_strings=[stop],
                                   tokenizer=tokenizer)
    assert reference.shape[1] < 12, 'the stop string did not stop'
    assert torch.equal(result, reference)
    sampled = dict(settings, do_sample=True, num_return_sequences=3)
    torch.manual_seed(3)
    reference = model.generate(**sampled)
    torch.manual_seed(3)
    with lean_decoding(model):
        result = model.generate(**sampled)
    assert reference.shape[0] == 3 and torch.equal(result, reference)
