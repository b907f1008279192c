"""The demo's tokenizer: the real LLaMA-format sentencepiece model that ships
in the ``mistral-common`` wheel (32000 tokens, bos/eos/unk = 1/2/0)."""
import importlib.util
import json
import shutil
from pathlib import Path


def write_llama_tokenizer(out_dir: str) -> str:
    """Write a transformers tokenizer folder for ``AutoTokenizer``.

    The folder holds ``tokenizer.model`` and a ``tokenizer_config.json`` that
    names ``LlamaTokenizer`` and asks for the BOS token, as LLaMA does.

    Args:
        out_dir (str): Folder to write; created if missing.

    Returns:
        str: ``out_dir``.
    """
    spec = importlib.util.find_spec('mistral_common')
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            'The demo tokenizer comes from the mistral-common wheel: '
            'pip install -r requirements/demo.txt')
    model_file = Path(spec.origin).parent / 'data' / 'tokenizer.model.v1'
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_file, folder / 'tokenizer.model')
    config = dict(
        tokenizer_class='LlamaTokenizer', add_bos_token=True,
        add_eos_token=False, bos_token='<s>', eos_token='</s>',
        unk_token='<unk>', legacy=False, model_max_length=2048)
    (folder / 'tokenizer_config.json').write_text(json.dumps(config, indent=2))
    return str(folder)
