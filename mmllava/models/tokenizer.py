"""Tokenizers, built from a local transformers tokenizer folder."""
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from mmllava.registry import TOKENIZERS
from mmllava.utils.files import require_local_folder


@TOKENIZERS.register_module(name='PretrainedTokenizer')
def build_pretrained_tokenizer(pretrained: str,
                               trust_remote_code: bool = False,
                               **kwargs) -> PreTrainedTokenizerBase:
    """Load a fast tokenizer from a local folder.

    Labels are built from character offsets, which only fast (``tokenizers``
    backed) tokenizers report. A tokenizer without a pad token pads with its
    unk token, as the official LLaVA v1 recipes do.

    Args:
        pretrained (str): Folder with the tokenizer files.
        trust_remote_code (bool): Passed to transformers; off by default.
        **kwargs: Passed to ``AutoTokenizer.from_pretrained``.
    """
    tokenizer = AutoTokenizer.from_pretrained(
        require_local_folder(pretrained, 'Tokenizer'),
        trust_remote_code=trust_remote_code, **kwargs)
    if not tokenizer.is_fast:
        raise TypeError(f'The tokenizer in {pretrained} is not a fast '
                        'tokenizer; mmllava needs character offsets.')
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def build_tokenizer(cfg) -> PreTrainedTokenizerBase:
    """Build a tokenizer from a config dict, or pass a built one through."""
    if isinstance(cfg, PreTrainedTokenizerBase):
        return cfg
    return TOKENIZERS.build(cfg)
