"""A leaner decoding loop for Llama-family LLMs on CPU, run through
transformers' own ``generate``.

transformers' ``generate`` prepares the inputs, the logits processors and
the stopping criteria, and then hands the loop to a decoding method; its
``custom_generate`` argument takes our own. Each new token's step in
:func:`lean_decode` runs the model's own modules (embedding, rotary
embedding, norms, projections, MLPs, LM head) and transformers' own SDPA
attention function, in the model's order, but leaves out what a step
through ``model.forward`` also does: building the attention masks, the cache
classes' bookkeeping and concatenations, the output classes, and
``generate``'s per-step input preparation. On 2 CPU cores that made a
decode step of the benchmark's LLM 2-4 ms (about a sixth) shorter
(docs/inference.md). The prefill is ``model.forward`` itself, and every
step's logits go through ``generate``'s logits processors and stopping
criteria, so greedy and sampled answers, ``min_new_tokens``, stop strings
and streamers behave as in ``generate``.

Callers opt in with :func:`lean_decoding` (the inference API, the server
and ``tools/test.py`` do, see :func:`~mmllava.models.cpu_generation.
fast_cpu_generation`); the model classes know nothing of it.
"""
import logging
import sys
import threading
import weakref
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, Optional

import torch
from mmengine.logging import print_log
from torch import nn
from transformers import (LlamaForCausalLM, MistralForCausalLM,
                          Qwen2ForCausalLM, Qwen3ForCausalLM,
                          StopStringCriteria, StoppingCriteriaList)
from transformers.integrations.sdpa_attention import sdpa_attention_forward

#: The causal LMs whose decoder layers :func:`lean_decode` runs: embedding
#: -> (RMSNorm -> attention with rotary embeddings -> residual -> RMSNorm ->
#: MLP -> residual) per layer -> RMSNorm -> LM head. Subclasses are not
#: taken: their forward may differ.
SUPPORTED_LMS = (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
                 Qwen3ForCausalLM)

#: ``generate`` arguments that ask for what :func:`lean_decode` does not do
#: (beams, assistants, contrastive search, extra outputs, a cache or loop of
#: the caller's): set to anything but these defaults, transformers' own loop
#: runs.
_DEFAULTS_THE_LOOP_NEEDS = dict(
    num_beams=(None, 1), num_beam_groups=(None, 1), penalty_alpha=(None, ),
    assistant_model=(None, ), prompt_lookup_num_tokens=(None, ),
    return_dict_in_generate=(None, False), output_scores=(None, False),
    output_logits=(None, False), output_attentions=(None, False),
    output_hidden_states=(None, False), past_key_values=(None, ),
    cache_implementation=(None, ), custom_generate=(None, ),
    synced_gpus=(None, False), generation_config=(None, ),
    prefill_chunk_size=(None, ), use_cache=(None, True))


def lean_decode_unsupported(llm: nn.Module) -> Optional[str]:
    """Why :func:`lean_decode` cannot run ``llm``, or None if it can."""
    if type(llm) not in SUPPORTED_LMS:
        return (f'{type(llm).__name__} is not one of '
                f'{[cls.__name__ for cls in SUPPORTED_LMS]}')
    config = llm.config
    if config._attn_implementation != 'sdpa':
        return (f'its attention is {config._attn_implementation!r}, not '
                "'sdpa'")
    if llm.device.type != 'cpu':
        return f'it is on {llm.device.type}, not the CPU'
    if llm.training:
        return 'it is in training mode'
    for index, layer in enumerate(llm.model.layers):
        window = getattr(layer.self_attn, 'sliding_window',
                         getattr(config, 'sliding_window', None))
        if window is not None:
            return (f'layer {index} attends through a sliding window of '
                    f'{window}')
    return None


def _call_applies(llm: nn.Module, kwargs: dict) -> bool:
    """Whether a ``generate(**kwargs)`` call on ``llm`` decodes one
    sequence per prompt without extra outputs (what :func:`lean_decode`
    does)."""
    for key, defaults in _DEFAULTS_THE_LOOP_NEEDS.items():
        value = kwargs.get(key, getattr(llm.generation_config, key, None))
        # ``is``: True == 1, and a tensor has no truth value.
        if not any(value is default or (type(value) is int and
                                        value == default)
                   for default in defaults):
            return False
    return True


class _KVBuffers:
    """Each layer's keys and values for a whole generation, allocated once
    and filled in place (the prompt's from the prefill's cache).

    Args:
        cache: The prefill's transformers ``DynamicCache``.
        attention_mask (torch.Tensor, optional): (B, prompt) 1 for tokens,
            0 for padding.
        new_tokens (int): The most tokens the generation adds.
    """

    def __init__(self, cache, attention_mask: Optional[torch.Tensor],
                 new_tokens: int) -> None:
        first = cache.layers[0].keys
        batch, kv_heads, prompt_length, head_dim = first.shape
        total = prompt_length + new_tokens
        self.keys, self.values = [], []
        for layer in cache.layers:
            for stored, buffers in ((layer.keys, self.keys),
                                    (layer.values, self.values)):
                buffer = stored.new_empty(batch, kv_heads, total, head_dim)
                buffer[:, :, :prompt_length] = stored
                buffers.append(buffer)
        self.length = prompt_length
        # (B, 1, 1, total): which keys each row attends to; None while
        # every row attends to every key (no padding), as transformers does.
        self.key_mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            self.key_mask = torch.ones(batch, 1, 1, total, dtype=torch.bool,
                                       device=first.device)
            self.key_mask[:, 0, 0, :prompt_length] = attention_mask.bool()

    def append(self, layer: int, keys: torch.Tensor,
               values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one step's (B, kv_heads, 1, head_dim) keys and values of
        ``layer``; return the layer's keys and values so far."""
        end = self.length + 1
        self.keys[layer][:, :, self.length:end] = keys
        self.values[layer][:, :, self.length:end] = values
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def mask(self) -> Optional[torch.Tensor]:
        if self.key_mask is None:
            return None
        return self.key_mask[..., :self.length + 1]


def _attention(attention: nn.Module, hidden: torch.Tensor,
               position_embeddings: tuple[torch.Tensor, torch.Tensor],
               buffers: _KVBuffers, layer: int) -> torch.Tensor:
    """One decode step of a Llama-family self-attention module on
    (B, 1, C) hidden states, its keys and values added to ``buffers``."""
    shape = (*hidden.shape[:-1], -1, attention.head_dim)
    # (B, 1, C) -> (B, heads, 1, head_dim)
    query = attention.q_proj(hidden).view(shape)
    key = attention.k_proj(hidden).view(shape)
    if hasattr(attention, 'q_norm'):  # Qwen3 normalises each head
        query, key = attention.q_norm(query), attention.k_norm(key)
    query, key = query.transpose(1, 2), key.transpose(1, 2)
    value = attention.v_proj(hidden).view(shape).transpose(1, 2)
    rotary = sys.modules[type(attention).__module__].apply_rotary_pos_emb
    query, key = rotary(query, key, *position_embeddings)
    keys, values = buffers.append(layer, key, value)
    output, _ = sdpa_attention_forward(attention, query, keys, values,
                                       buffers.mask(), dropout=0.0,
                                       scaling=attention.scaling)
    # (B, 1, heads, head_dim) -> (B, 1, C)
    return attention.o_proj(output.reshape(*hidden.shape[:-1], -1))


def _decode_step(llm: nn.Module, tokens: torch.Tensor,
                 positions: torch.Tensor,
                 buffers: _KVBuffers) -> torch.Tensor:
    """The next-token logits (B, vocab) after ``tokens`` (B,) at
    ``positions`` (B, 1), the cache grown by one."""
    decoder = llm.model
    hidden = decoder.embed_tokens(tokens[:, None])
    position_embeddings = decoder.rotary_emb(hidden, positions)
    for index, layer in enumerate(decoder.layers):
        hidden = hidden + _attention(
            layer.self_attn, layer.input_layernorm(hidden),
            position_embeddings, buffers, index)
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    buffers.length += 1
    logits = llm.lm_head(decoder.norm(hidden))
    return logits[:, -1].to(copy=True, dtype=torch.float32)


@torch.no_grad()
def lean_decode(model: nn.Module, input_ids: torch.Tensor,
                logits_processor, stopping_criteria, generation_config,
                synced_gpus: bool = False, token_streamer=None,
                **model_kwargs) -> torch.Tensor:
    """transformers' greedy and sampling loop (``GenerationMixin._sample``
    without the optional outputs) with :func:`_decode_step` for each new
    token; a ``custom_generate`` for ``model.generate``.

    Args:
        model (nn.Module): One of :data:`SUPPORTED_LMS`.
        input_ids (torch.Tensor): (B, L) the prompt's ids (L is 0 where
            ``generate`` got ``inputs_embeds`` only).
        logits_processor, stopping_criteria, generation_config: As
            ``generate`` prepared them.
        token_streamer: ``generate``'s ``streamer``: gets the prompt's ids
            and then each step's tokens. (``generate`` passes a
            ``custom_generate`` only the arguments ``_sample`` does not
            take, so :func:`_generate` hands the streamer over under this
            name.)
        **model_kwargs: The prefill's arguments, as ``generate`` prepared
            them (``inputs_embeds``, ``attention_mask``, ``position_ids``,
            ``past_key_values``, ...).

    Returns:
        torch.Tensor: ``input_ids`` with the new tokens appended (after a
        row's end, the pad token), as ``generate`` returns them.
    """
    if synced_gpus or generation_config.num_beams != 1 or \
            generation_config.return_dict_in_generate:
        raise ValueError(
            'lean_decode decodes one sequence per prompt without extra '
            f'outputs; got synced_gpus={synced_gpus}, num_beams='
            f'{generation_config.num_beams}, return_dict_in_generate='
            f'{generation_config.return_dict_in_generate}')
    if token_streamer is not None:
        token_streamer.put(input_ids.cpu())
    prefill_inputs = model.prepare_inputs_for_generation(
        input_ids, is_first_iteration=True, **model_kwargs)
    outputs = model(**prefill_inputs, return_dict=True)
    logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32)
    new_tokens = generation_config.max_length - input_ids.shape[1]
    buffers = _KVBuffers(outputs.past_key_values,
                         model_kwargs.get('attention_mask'), new_tokens)
    del outputs
    positions = prefill_inputs.get('position_ids')
    positions = (positions[:, -1:] if positions is not None else
                 torch.full((logits.shape[0], 1), buffers.length - 1,
                            device=logits.device))
    pad_token_id = generation_config._pad_token_tensor
    has_eos_criteria = any(hasattr(criteria, 'eos_token_id')
                           for criteria in stopping_criteria)
    unfinished = torch.ones(logits.shape[0], dtype=torch.long,
                            device=logits.device)
    while True:
        scores = logits_processor(input_ids, logits)
        if generation_config.do_sample:
            tokens = torch.multinomial(scores.softmax(-1), 1).squeeze(1)
        else:
            tokens = scores.argmax(-1)
        if has_eos_criteria:
            tokens = tokens * unfinished + pad_token_id * (1 - unfinished)
        input_ids = torch.cat([input_ids, tokens[:, None]], dim=-1)
        unfinished = unfinished & ~stopping_criteria(input_ids, None)
        if token_streamer is not None:
            token_streamer.put(tokens.cpu())
        if not bool(unfinished.any()):
            break
        positions = positions + 1
        logits = _decode_step(model, tokens, positions, buffers)
    if token_streamer is not None:
        token_streamer.end()
    return input_ids


def _generate(llm: nn.Module, generate: Callable, *args, **kwargs):
    """``generate`` (``llm``'s) with :func:`lean_decode` as its loop where
    the call is one it does."""
    if not args and _call_applies(llm, kwargs):
        kwargs['custom_generate'] = lean_decode
        kwargs['token_streamer'] = kwargs.pop('streamer', None)
        _stop_strings_as_criterion(llm, kwargs)
    return generate(*args, **kwargs)


def _stop_strings_as_criterion(llm: nn.Module, kwargs: dict) -> None:
    """``generate`` builds its stop-string criterion from the ``tokenizer``
    argument, which it does not keep for a ``custom_generate``: build it
    here and pass it among the stopping criteria."""
    stop_strings = kwargs.pop('stop_strings', None) or \
        llm.generation_config.stop_strings
    tokenizer = kwargs.pop('tokenizer', None)
    if not stop_strings:
        return
    if tokenizer is None:
        raise ValueError(f'stop_strings {stop_strings!r} need the model\'s '
                         'tokenizer: pass tokenizer= to generate')
    if isinstance(stop_strings, str):
        stop_strings = [stop_strings]
    kwargs['stopping_criteria'] = StoppingCriteriaList([
        *(kwargs.get('stopping_criteria') or []),
        StopStringCriteria(tokenizer=tokenizer, stop_strings=stop_strings)])
    # The generation config's own stop strings would need the tokenizer.
    kwargs['stop_strings'] = None


class _Installed:
    """Blocks inside :func:`lean_decoding` for one LLM: the first installs
    the instance ``generate`` (around the one it finds, which may be an
    instance attribute of its own), the last puts that back."""

    def __init__(self) -> None:
        self.users = 0
        self.replaced: Optional[Callable] = None


_INSTALLED: 'weakref.WeakKeyDictionary[nn.Module, _Installed]' = \
    weakref.WeakKeyDictionary()
#: The LLMs whose loop choice was logged (once per model).
_LOGGED: 'weakref.WeakSet[nn.Module]' = weakref.WeakSet()
_LOCK = threading.Lock()


def causal_lm_of(model: nn.Module) -> nn.Module:
    """The transformers causal LM that generates for ``model``: its
    ``llm`` (LLaVA) or the model itself."""
    return getattr(model, 'llm', model)


@contextmanager
def lean_decoding(model: nn.Module) -> Iterator[bool]:
    """Inside the block, ``generate`` calls of ``model``'s LLM that decode
    one sequence per prompt (greedy or sampled, without beams or extra
    outputs) run :func:`lean_decode`'s loop; other calls, and LLMs it does
    not support (:func:`lean_decode_unsupported`: other architectures, GPUs,
    attention other than SDPA, sliding windows), run transformers' own. The
    choice is logged once per model.

    Yields:
        bool: Whether the LLM runs the lean loop.
    """
    llm = causal_lm_of(model)
    reason = lean_decode_unsupported(llm)
    with _LOCK:
        if llm not in _LOGGED:
            _LOGGED.add(llm)
            print_log(
                'Decoding with mmllava\'s lean loop (each new token through '
                'the model\'s modules, without model.forward\'s per-step '
                'work).' if reason is None else
                f'Decoding with transformers\' loop: {reason}.',
                logger='current', level=logging.INFO)
        if reason is not None:
            installed = None
        else:
            installed = _INSTALLED.setdefault(llm, _Installed())
            if not installed.users:
                installed.replaced = vars(llm).get('generate')
                llm.generate = partial(_generate, llm, llm.generate)
            installed.users += 1
    try:
        yield installed is not None
    finally:
        if installed is not None:
            with _LOCK:
                installed.users -= 1
                if not installed.users:
                    if installed.replaced is None:
                        del llm.generate
                    else:
                        llm.generate = installed.replaced
