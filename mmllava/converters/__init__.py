"""Checkpoint conversions between mmllava and other layouts: llava-hf
(transformers), the official LLaVA repository, and LLaVA delta weights.

Every conversion goes shard by shard (see :mod:`.shards`) and writes sharded
safetensors with an index.
"""
from mmllava.converters.delta import apply_delta, make_delta
from mmllava.converters.llava_hf import (convert_hf_to_mmllava,
                                         convert_mmllava_to_hf, export_model)
from mmllava.converters.native import (LLaVASpec, spec_from_config,
                                       spec_from_model, write_mmllava_folders)

__all__ = ['apply_delta', 'make_delta', 'convert_hf_to_mmllava',
           'convert_mmllava_to_hf', 'export_model', 'LLaVASpec',
           'spec_from_config', 'spec_from_model', 'write_mmllava_folders']
