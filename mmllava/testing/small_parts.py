"""A full-size recipe on the demo's small parts.

The 7B recipes name a CLIP ViT-L tower, a 7B LLM and its tokenizer; the
demo's model base (``configs/llava/_base_/models/llava-tiny_demo.py``) names
a 4-layer CLIP tower, a small Llama and a LLaMA-format tokenizer. Swapping
the first for the second keeps everything else a recipe sets (what learns and
what is frozen, the schedule, the template, the data pipeline, where a stage
starts from), so that the recipe itself builds, trains and runs end to end on
a CPU (tests/test_configs/test_sharegpt4v_recipes.py,
examples/sharegpt4v_flow.py).
"""
import copy
from typing import Any

from mmengine.config import Config

from mmllava.model_index import repo_root

#: The model base whose parts stand in; its folders are relative to the
#: working directory, as in the demo configs.
DEMO_MODEL_BASE = 'configs/llava/_base_/models/llava-tiny_demo.py'
#: Layers of CLIP ViT-L/14 (224 and 336 px), the ShareGPT4V recipes' tower.
CLIP_VIT_L_LAYERS = 24
#: The recipes' top-level variables that name a part or the model's length.
PART_VARIABLES = ('vision_encoder_path', 'llm_path', 'tokenizer',
                  'image_processor', 'max_length')


def demo_parts() -> Config:
    """The demo's model base (parts, geometry, and its ``demo`` section)."""
    return Config.fromfile(str(repo_root() / DEMO_MODEL_BASE))


def same_share_of_layers(layer: int, tower_layers: int,
                         small_layers: int) -> int:
    """The layer of a ``small_layers`` tower at the same share of its depth
    as ``layer`` is of a ``tower_layers`` one: ShareGPT4V's first trainable
    layer 12 of CLIP ViT-L's 24 is layer 2 of a 4-layer tower.

    Args:
        layer (int): A layer index of the full tower.
        tower_layers (int): Layers of the full tower.
        small_layers (int): Layers of the small tower.

    Returns:
        int: The small tower's layer index.

    Raises:
        ValueError: ``layer`` is not a layer of the ``tower_layers`` tower,
            or the share falls between two layers of the small one.
    """
    if not 0 <= layer < tower_layers:
        raise ValueError(f'Layer {layer} is not one of the tower\'s '
                         f'{tower_layers} layers (0 to {tower_layers - 1}).')
    small_layer, remainder = divmod(layer * small_layers, tower_layers)
    if remainder:
        share = layer * small_layers / tower_layers
        raise ValueError(
            f'Layer {layer} of {tower_layers} falls between layers of a '
            f'{small_layers}-layer tower ({share:.2f}); give the small tower '
            'a number of layers that maps it to a whole one.')
    return small_layer


def _use_small_transforms(node: Any, parts: Config) -> None:
    """Point every image processor and tokenizer of the pipelines under
    ``node`` at the small parts and their length, and drop a typed
    image-token count (that of the recipe's tower)."""
    if isinstance(node, dict):
        kind = node.get('type')
        if kind == 'ProcessImage':
            node['image_processor'] = copy.deepcopy(parts.image_processor)
        elif kind == 'TokenizeConversation':
            node['tokenizer'] = copy.deepcopy(parts.tokenizer)
            node.pop('num_image_tokens', None)
            if 'max_length' in node:
                node['max_length'] = parts.max_length
        for value in node.values():
            _use_small_transforms(value, parts)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _use_small_transforms(value, parts)


def with_small_parts(recipe: Config) -> Config:
    """``recipe`` with the demo's tower, LLM and tokenizer in place of its
    own.

    - The tower loads the demo's and keeps the recipe's feature selection
      and freeze policy; ``trainable_from_layer`` (set by the ShareGPT4V
      recipes, whose tower is CLIP ViT-L/14) moves to the same share of the
      demo tower's layers (:func:`same_share_of_layers`).
    - The LLM and the tokenizer become the demo's, float32 and without
      gradient checkpointing (a CPU runs them), and pixels stay float32
      (the default data preprocessor).
    - In every pipeline (dataloaders, ``test_pipeline``, hooks) the image
      processor and the tokenizer become the demo's and ``max_length`` the
      demo model's; so do the recipe's variables naming them
      (:data:`PART_VARIABLES`). A ``num_image_tokens`` the recipe types is
      dropped: the tools derive the demo tower's when the run starts
      (:mod:`mmllava.utils.image_token_counts`, whose
      ``fill_image_token_counts`` a pipeline built without them needs).
    - Dataloaders load in the main process (no workers: small data).

    The data files, the schedule, the template, what learns and the starting
    points (``model.projector_pretrained``, ``load_from``) stay the recipe's.

    Args:
        recipe (Config): A recipe, e.g. ``Config.fromfile('configs/llava/
            sharegpt4v-7b_pretrain.py')``. Not changed.

    Returns:
        Config: The recipe on the small parts.
    """
    parts = demo_parts()
    cfg = copy.deepcopy(recipe)
    for name in PART_VARIABLES:
        if name in cfg:
            cfg[name] = copy.deepcopy(parts[name])
    model = cfg.model
    model.vision_encoder.type = parts.model.vision_encoder.type
    model.vision_encoder.pretrained = parts.model.vision_encoder.pretrained
    first_trainable = model.vision_encoder.get('trainable_from_layer')
    if first_trainable is not None:
        model.vision_encoder.trainable_from_layer = same_share_of_layers(
            first_trainable, CLIP_VIT_L_LAYERS,
            parts.demo.vision_config.num_hidden_layers)
    model.llm = copy.deepcopy(parts.model.llm)
    model.tokenizer = copy.deepcopy(parts.model.tokenizer)
    model.data_preprocessor = dict(type='LLaVADataPreprocessor')
    for value in cfg.values():
        _use_small_transforms(value, parts)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if key in cfg:
            cfg[key].num_workers = 0
            cfg[key].persistent_workers = False
    return cfg
