"""The ShareGPT4V recipes (configs/llava/sharegpt4v-7b_pretrain.py,
sharegpt4v-7b_ft.py, share-captioner_ft.py) and their flow
(examples/sharegpt4v_flow.py).

- Each recipe holds the official script's numbers and differs from the
  LLaVA-1.5 recipe it starts from in exactly the keys ShareGPT4V changes.
- Built on the demo's small parts (:mod:`mmllava.testing.small_parts`, the
  ``demo_workspace`` fixture's 4-layer tower), each recipe freezes what
  ShareGPT4V freezes, counted per part from the modules, and one optimizer
  step of it gives a finite loss, moves every trainable weight and leaves
  every frozen one as it was.
- The flow runs end to end: captions from a replay endpoint, the captioner,
  its captions, pre-training, instruction tuning (slow).
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

from mmllava.registry import DATASETS, MODELS
from mmllava.testing.small_parts import (demo_parts, same_share_of_layers,
                                         with_small_parts)
from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.image_token_counts import fill_image_token_counts

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / 'configs/llava'
RECIPES = ('sharegpt4v-7b_pretrain', 'sharegpt4v-7b_ft', 'share-captioner_ft')
#: The per-GPU batches of the recipes assume 8 GPUs (docs/training.md).
NUM_GPUS = 8
#: The official numbers: scripts/sharegpt4v/slurm_pretrain_7b.sh and
#: slurm_finetune_7b.sh (ShareGPT4V in InternLM-XComposer), the data files
#: of the ShareGPT4V dataset card; the captioner is LLaVA-1.5's stage 2.
OFFICIAL = {
    'sharegpt4v-7b_pretrain':
    dict(lr=2e-5, global_batch=256, template='plain', padded=False,
         data_file='share-captioner_coco_lcs_sam_1246k_1107.json'),
    'sharegpt4v-7b_ft':
    dict(lr=2e-5, global_batch=128, template='vicuna_v1', padded=True,
         data_file='sharegpt4v_mix665k_cap23k_coco-ap9k_lcs3k_sam9k_div2k'
         '.json'),
    'share-captioner_ft':
    dict(lr=2e-5, global_batch=128, template='vicuna_v1', padded=True,
         data_file='sharegpt4v_instruct_gpt4-vision_cap100k.json'),
}
DATA_KEYS = {'data_root', 'train_dataloader.dataset.data_file',
             'train_dataloader.dataset.image_folder'}

pytestmark = pytest.mark.usefixtures('one_thread')


def recipe(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / f'{name}.py'))


def leaves(tree: Any, prefix: str = '') -> dict:
    """Every leaf of nested dicts and lists, by its dotted key."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    found = {}
    for key, value in items:
        found.update(leaves(value, f'{prefix}.{key}'.lstrip('.')))
    return found


def differing_keys(config: Config, base: Config) -> set[str]:
    """The dotted keys whose values differ between two configs, or that one
    of them lacks."""
    ours, theirs = leaves(config.to_dict()), leaves(base.to_dict())
    missing = object()
    return {key for key in ours.keys() | theirs.keys()
            if ours.get(key, missing) != theirs.get(key, missing)}


def pads_to_squares(pipeline: list) -> bool:
    """Whether a pipeline pads images to squares (LLaVA-1.5's 'pad'): a
    ``PadToSquare`` step or ``ProcessImage``'s ``pad_to_square``."""
    return any(step.type == 'PadToSquare' or step.get('pad_to_square')
               for step in pipeline)


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_holds_the_official_numbers(name):
    cfg, official = recipe(name), OFFICIAL[name]
    loader = cfg.train_dataloader
    assert cfg.optim_wrapper.optimizer.lr == official['lr']
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.0
    assert cfg.optim_wrapper.clip_grad.max_norm == 1.0
    global_batch = loader.batch_size * NUM_GPUS * \
        cfg.optim_wrapper.get('accumulative_counts', 1)
    assert global_batch == official['global_batch'] == \
        cfg.auto_scale_lr.base_batch_size
    assert cfg.train_cfg.max_epochs == 1
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 0.03)
    assert (cosine.type, cosine.begin, cosine.end, cosine.eta_min) == \
        ('CosineAnnealingLR', 0.03, 1, 0.0)
    assert Path(loader.dataset.data_file).name == official['data_file']
    assert pads_to_squares(loader.dataset.pipeline) == official['padded']
    tokenize = next(step for step in loader.dataset.pipeline
                    if step.type == 'TokenizeConversation')
    assert cfg.model.template == tokenize.template == official['template']
    assert tokenize.max_length == 2048


def test_pretrain_is_llava_stage_1_with_the_llm_and_half_the_tower():
    cfg = recipe('sharegpt4v-7b_pretrain')
    changed = differing_keys(cfg, recipe('llava-1.5-7b_pretrain'))
    assert changed == DATA_KEYS | {
        'model.freeze_llm', 'model.vision_encoder.trainable_from_layer',
        'model.projector_pretrained', 'optim_wrapper.optimizer.lr',
        'train_dataloader.batch_size', 'optim_wrapper.accumulative_counts'}
    assert cfg.model.freeze_llm is False
    assert cfg.model.freeze_vision_encoder is True
    # CLIP ViT-L/14's 24 layers: 12-23 learn (--tune_vit_from_layer 12).
    assert cfg.model.vision_encoder.trainable_from_layer == 12
    assert cfg.model.projector_pretrained == 'work_dirs/llava-1.5-7b_pretrain'


def test_ft_is_llava_stage_2_from_the_whole_pretrained_model():
    cfg = recipe('sharegpt4v-7b_ft')
    assert differing_keys(cfg, recipe('llava-1.5-7b_ft')) == DATA_KEYS | {
        'model.projector_pretrained', 'load_from'}
    assert cfg.model.projector_pretrained is None
    assert cfg.load_from == 'work_dirs/sharegpt4v-7b_pretrain'
    assert cfg.model.freeze_vision_encoder is True
    assert 'trainable_from_layer' not in cfg.model.vision_encoder


def test_captioner_is_llava_stage_2_on_the_gpt4v_captions():
    assert differing_keys(recipe('share-captioner_ft'),
                          recipe('llava-1.5-7b_ft')) == DATA_KEYS


@pytest.mark.parametrize('layer, tower, small, expected', [
    (12, 24, 4, 2), (12, 24, 6, 3), (0, 24, 4, 0), (18, 24, 4, 3)])
def test_a_layer_maps_to_the_same_share_of_a_small_tower(
        layer, tower, small, expected):
    assert same_share_of_layers(layer, tower, small) == expected


@pytest.mark.parametrize('layer, small, message', [
    (12, 5, 'falls between layers of a 5-layer tower'),
    (24, 4, 'not one of the tower'),
    (-1, 4, 'not one of the tower')])
def test_a_layer_without_a_small_twin_is_refused(layer, small, message):
    with pytest.raises(ValueError, match=message):
        same_share_of_layers(layer, 24, small)


# ---------------------------------------------------------------------------
# Each recipe built on the small parts.
# ---------------------------------------------------------------------------
class Built(NamedTuple):
    """A recipe on the small parts, its model and the model's first
    weights (the model itself trains in a test)."""
    cfg: Config
    model: nn.Module
    initial: dict


@pytest.fixture(scope='module')
def in_workspace(demo_workspace):
    """The recipes on the small parts name them relative to the working
    directory, as the demo configs do."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(demo_workspace)
        yield demo_workspace


@pytest.fixture(scope='module')
def stage1_projector(tmp_path_factory) -> tuple[str, dict]:
    """A LLaVA-1.5 stage-1 result as the official ``mm_projector.bin``: its
    path and its tensors by projector key."""
    demo = demo_parts().demo
    vision, llm = demo.vision_config.hidden_size, demo.llm_config.hidden_size
    generator = torch.Generator().manual_seed(1)
    tensors = {'0.weight': torch.randn(llm, vision, generator=generator),
               '0.bias': torch.randn(llm, generator=generator),
               '2.weight': torch.randn(llm, llm, generator=generator),
               '2.bias': torch.randn(llm, generator=generator)}
    path = tmp_path_factory.mktemp('stage1') / 'mm_projector.bin'
    torch.save({f'model.mm_projector.{key}': value
                for key, value in tensors.items()}, path)
    return str(path), tensors


@pytest.fixture(scope='module')
def built(in_workspace, stage1_projector) -> Callable[[str], Built]:
    """``built(name)``: the recipe on the small parts, built once, starting
    from :func:`stage1_projector` where it names a stage-1 projector."""
    cache = {}

    def build(name: str) -> Built:
        if name not in cache:
            cfg = fill_image_token_counts(with_small_parts(recipe(name)))
            if cfg.model.projector_pretrained is not None:
                cfg.model.projector_pretrained = stage1_projector[0]
            torch.manual_seed(0)
            model = MODELS.build(cfg.model)
            cache[name] = Built(cfg, model, {
                key: value.clone()
                for key, value in model.state_dict().items()})
        return cache[name]

    return build


def count(parameters, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in parameters
               if p.requires_grad or not trainable_only)


def learning_layers(model: nn.Module, name: str) -> list[int]:
    """The tower layers ShareGPT4V trains in this recipe, from the tower's
    own depth: in pre-training the latter half, but for the last layer,
    whose output only the last hidden state holds (select_layer -2 reads
    the one before); none otherwise."""
    depth = len(model.vision_encoder.layers)
    assert model.vision_encoder.select_layer == -2
    if name == 'sharegpt4v-7b_pretrain':
        return list(range(depth // 2, depth - 1))
    return []


@pytest.mark.parametrize('name', RECIPES)
def test_recipe_freezes_what_sharegpt4v_freezes(built, name):
    model = built(name).model
    layers = model.vision_encoder.layers
    learning = learning_layers(model, name)
    assert len(layers) == 4 and learning in ([2], [])
    for index, layer in enumerate(layers):
        flags = {p.requires_grad for p in layer.parameters()}
        assert flags == {index in learning}, f'tower layer {index}'
    expected = {
        'vision_encoder': sum(count(layers[i].parameters())
                              for i in learning),
        'projector': count(model.projector.parameters()),
        'llm': count(model.llm.parameters()),
    }
    found = {part: count(getattr(model, part).parameters(), True)
             for part in expected}
    assert found == expected
    # What the model logs when it is built says the same.
    assert model.trainable_parameter_counts() == expected


@pytest.mark.parametrize('name', ['sharegpt4v-7b_pretrain',
                                  'share-captioner_ft'])
def test_recipe_starts_from_the_llava_stage_1_projector(
        built, stage1_projector, name):
    initial = built(name).initial
    for key, value in stage1_projector[1].items():
        assert torch.equal(initial[f'projector.{key}'], value), key


def test_ft_loads_everything_the_pretraining_saves(built):
    pretrained = built('sharegpt4v-7b_pretrain').model.state_dict()
    finetune = built('sharegpt4v-7b_ft').model
    finetune.load_state_dict(pretrained, strict=True)
    for key, value in finetune.state_dict().items():
        assert torch.equal(value, pretrained[key]), key


def small_data_file(name: str, folder: Path) -> str:
    """Records of the demo workspace in the recipe's format: short
    captions for pre-training, detailed descriptions for the captioner,
    the instruction mix for instruction tuning."""
    if name == 'sharegpt4v-7b_pretrain':
        return 'data/demo/pretrain.json'
    if name == 'sharegpt4v-7b_ft':
        return 'data/demo/instruct.json'
    details = [record for record in
               json.loads(Path('data/demo/instruct.json').read_text())
               if record['id'].endswith('_detail')]
    path = folder / 'detailed_captions.json'
    path.write_text(json.dumps(details))
    return str(path)


@pytest.mark.parametrize('name', RECIPES)
def test_one_step_of_the_recipe_moves_what_learns(built, name, tmp_path):
    cfg, model, _ = built(name)
    dataset = DATASETS.build(dict(
        cfg.train_dataloader.dataset, image_folder='data/demo/',
        data_file=small_data_file(name, tmp_path)))
    with DefaultScope.overwrite_default_scope('mmllava'):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # The pre-training accumulates two micro-batches per optimizer step.
    micro_batches = cfg.optim_wrapper.get('accumulative_counts', 1)
    optim_wrapper.initialize_count_status(model, 0, micro_batches)
    before = {key: p.detach().clone() for key, p in model.named_parameters()}
    model.train()
    for index in range(micro_batches):
        moved = {key for key, p in model.named_parameters()
                 if not torch.equal(p, before[key])}
        assert moved == set(), f'weights moved before micro-batch {index}'
        batch = pseudo_collate([dataset[2 * index], dataset[2 * index + 1]])
        loss = model.train_step(batch, optim_wrapper)['loss'].item()
        assert math.isfinite(loss) and loss > 0
    moved = {key for key, p in model.named_parameters()
             if not torch.equal(p, before[key])}
    assert moved == {key for key, p in model.named_parameters()
                     if p.requires_grad}


# ---------------------------------------------------------------------------
# The flow, end to end.
# ---------------------------------------------------------------------------
def last_state_dict(root: Path, recipe_name: str) -> dict:
    """The model weights of a flow stage's last checkpoint."""
    pointer = root / 'work_dirs' / recipe_name / 'last_checkpoint'
    assert pointer.is_file(), f'no last_checkpoint in {pointer.parent}'
    return torch.load(root / pointer.read_text().strip(), map_location='cpu',
                      weights_only=True)['state_dict']


def part(state_dict: dict, prefix: str) -> dict:
    return {key: value for key, value in state_dict.items()
            if key.startswith(prefix)}


def equal_keys(first: dict, second: dict) -> set[str]:
    return {key for key in first if torch.equal(first[key], second[key])}


@pytest.mark.slow
def test_flow_runs_end_to_end(tmp_path):
    root = tmp_path / 'flow'
    result = subprocess.run(
        [sys.executable, str(REPO / 'examples/sharegpt4v_flow.py'),
         '--work-dir', str(root), '--random-parts', '--seed-images', '8',
         '--web-images', '16', '--captioner-epochs', '40'],
        cwd=tmp_path, env=dict(os.environ), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=scaled_timeout(900))
    assert result.returncode == 0, result.stdout[-4000:]
    for header in ('0. LLaVA-1.5 stage 1', '1. Detailed captions',
                   '2. The captioner', '3. The captioner captions',
                   '4. ShareGPT4V pre-training',
                   '5. ShareGPT4V instruction tuning', 'Done'):
        assert header in result.stdout, header

    # The captioner wrote the pre-training data.
    captions = json.loads((root / 'data/web_captions.json').read_text())
    assert captions and {record['source'] for record in captions} == {
        'configs/llava-1.5-7b_caption.py (work_dirs/share-captioner_ft)'}
    for log in ('2_share-captioner_ft', '4_sharegpt4v-7b_pretrain'):
        assert 'projector work_dirs/llava-1.5-7b_pretrain' in \
            (root / 'logs' / f'{log}.log').read_text()

    # Stage 1 of LLaVA-1.5 left the tower and the LLM as they came;
    # ShareGPT4V's pre-training moved tower layer 2 of 4 and the LLM only.
    original = last_state_dict(root, 'llava-1.5-7b_pretrain')
    pretrained = last_state_dict(root, 'sharegpt4v-7b_pretrain')
    tower = part(original, 'vision_encoder.')
    learning = {key for key in tower if '.layers.2.' in key}
    assert learning and tower.keys() - equal_keys(tower, pretrained) == \
        learning
    llm = part(original, 'llm.')
    assert equal_keys(llm, pretrained) == set()

    # Instruction tuning started from all of it and froze the tower again.
    finetuned = last_state_dict(root, 'sharegpt4v-7b_ft')
    tower = part(pretrained, 'vision_encoder.')
    assert equal_keys(tower, finetuned) == tower.keys()
    assert equal_keys(part(pretrained, 'llm.'), finetuned) == set()
