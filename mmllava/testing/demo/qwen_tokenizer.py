"""A small Qwen-style tokenizer for offline tests and demos.

No Qwen tokenizer ships in any wheel we can install, so this trains one: a
byte-level BPE with Qwen2's pre-tokenizer (the same split pattern, the same
byte alphabet, so ``\\n`` is id 198 as in Qwen), on the English help text of
Python's own documentation (``pydoc_data``, part of the standard library).
It is wrapped as transformers' ``Qwen2Tokenizer`` with the special tokens and
settings of Qwen1.5 chat models: ``<|endoftext|>`` (pad), ``<|im_start|>``,
``<|im_end|>`` (eos), no BOS and no unk token.
"""
import json
from pathlib import Path

#: Qwen2's pre-tokenizer split pattern (transformers' Qwen2Tokenizer).
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?"
    r'[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+')
#: In Qwen's order: they follow the BPE vocabulary, as in Qwen (151643-5).
SPECIAL_TOKENS = ('<|endoftext|>', '<|im_start|>', '<|im_end|>')


def _training_text(num_chars: int) -> str:
    from pydoc_data.topics import topics
    return '\n\n'.join(topics[key] for key in sorted(topics))[:num_chars]


def write_qwen_tokenizer(out_dir: str,
                         vocab_size: int = 3000,
                         num_chars: int = 300_000) -> str:
    """Train a Qwen-style byte-level BPE and save it for ``AutoTokenizer``.

    Args:
        out_dir (str): Folder to write; created if missing.
        vocab_size (int): BPE vocabulary size, special tokens not counted.
            Defaults to 3000.
        num_chars (int): How much text to train on. Defaults to 300,000
            (under a second).

    Returns:
        str: ``out_dir``.
    """
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior='isolated'),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.train_from_iterator(
        [_training_text(num_chars)],
        trainers.BpeTrainer(
            vocab_size=vocab_size, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(bpe.to_str())['model']
    vocab = dict(model['vocab'])
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2TokenizerFast(
        vocab=vocab, merges=[tuple(merge) for merge in model['merges']],
        unk_token=None, bos_token=None, eos_token='<|im_end|>',
        pad_token='<|endoftext|>',
        extra_special_tokens=['<|im_start|>', '<|im_end|>'])
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    return str(folder)
