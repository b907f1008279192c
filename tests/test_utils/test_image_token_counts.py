"""``mmllava/utils/image_token_counts.py``: the image-token count of the
pipelines that truncate is derived from the tower's ``config.json`` (CLIP,
or a SigLIP model's ``vision_config``) and, with AnyRes, the model's grids,
merge and budget; a missing tower is an error naming the pipeline key and
the folder; a typed count stays; and no config types one."""
import argparse
from pathlib import Path

import pytest
from mmengine.config import Config
from transformers import CLIPVisionConfig, SiglipConfig

from mmllava.datasets.transforms.tokenize import AnyResTokenCount
from mmllava.models.anyres import count_image_tokens
from mmllava.utils.image_token_counts import fill_image_token_counts
from mmllava.utils.launch import apply_runner_args

REPO = Path(__file__).resolve().parents[2]
TOKENIZE_KEY = 'train_dataloader.dataset.pipeline.1'


def config(tower: str, select_feature: str = 'patch', **model) -> Config:
    """A model on the tower folder ``tower`` and a training pipeline that
    truncates but types no image-token count; its test pipeline does not
    truncate."""
    tokenize = dict(type='TokenizeConversation',
                    tokenizer=dict(type='PretrainedTokenizer',
                                   pretrained='tokenizer'),
                    template='plain')
    return Config(dict(
        model=dict(type='LLaVA', vision_encoder=dict(
            type='CLIPVisionEncoder', pretrained=tower,
            select_feature=select_feature), **model),
        train_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadImage'), dict(tokenize, max_length=64)])),
        test_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadImage'), dict(tokenize, mode='predict')]))))


def filled(cfg: Config):
    fill_image_token_counts(cfg)
    assert 'num_image_tokens' not in cfg.test_dataloader.dataset.pipeline[1]
    return cfg.train_dataloader.dataset.pipeline[1].num_image_tokens


@pytest.fixture
def clip_tower(tmp_path) -> str:
    """A CLIP vision tower's config.json: 48 px, 16-px patches."""
    CLIPVisionConfig(image_size=48, patch_size=16).save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.fixture
def siglip_tower(tmp_path) -> str:
    """A whole SigLIP model's config.json (the tower's settings in its
    ``vision_config``): 384 px, 14-px patches."""
    SiglipConfig(vision_config=dict(image_size=384, patch_size=14)) \
        .save_pretrained(tmp_path)
    return str(tmp_path)


@pytest.mark.parametrize('select_feature, rows', [('patch', 9),
                                                   ('cls_patch', 10)])
def test_the_count_is_the_clip_tower_s_geometry(clip_tower, select_feature,
                                                rows):
    assert filled(config(clip_tower, select_feature)) == rows


def test_a_siglip_model_s_vision_config_is_read(siglip_tower):
    assert filled(config(siglip_tower)) == 27 * 27


def test_an_anyres_count_is_built_from_the_model_s_keys(siglip_tower):
    pinpoints = [(384, 768), (768, 384), (768, 768)]
    count = filled(config(
        siglip_tower, image_aspect_ratio='anyres',
        image_grid_pinpoints=pinpoints, mm_patch_merge_type='spatial_unpad',
        anyres_max=1))
    assert count == dict(grid_pinpoints=[[384, 768], [768, 384], [768, 768]],
                         tile_size=384, patch_size=14,
                         merge_type='spatial_unpad', cls_token=False,
                         anyres_max=1)
    counter = AnyResTokenCount(**count)
    for size in [(300, 500), (1000, 1000), (2000, 600), (100, 100)]:
        assert counter(size) == count_image_tokens(
            size, pinpoints, 384, 14, 'spatial_unpad', 729, 1), size


def test_an_anyres_count_keeps_the_cls_row_of_a_flat_merge(clip_tower):
    pinpoints = [(48, 96), (96, 48)]
    count = filled(config(clip_tower, 'cls_patch',
                          image_aspect_ratio='anyres',
                          image_grid_pinpoints=pinpoints))
    assert (count['merge_type'], count['cls_token']) == ('flat', True)
    assert 'anyres_max' not in count
    counter = AnyResTokenCount(**count)
    for size in [(40, 90), (90, 40), (48, 48)]:
        assert counter(size) == count_image_tokens(
            size, pinpoints, 48, 16, 'flat', 10), size


def test_a_missing_tower_names_the_key_and_the_folder(tmp_path):
    folder = str(tmp_path / 'no_tower')
    with pytest.raises(ValueError) as error:
        fill_image_token_counts(config(folder))
    assert str(error.value).startswith(
        f'{TOKENIZE_KEY}.num_image_tokens is derived from the tower\'s '
        f'config.json, but {folder}/config.json is not here: ')


@pytest.mark.parametrize('typed', [576, dict(grid_pinpoints=[[48, 96]],
                                              tile_size=48, patch_size=16,
                                              merge_type='flat')])
def test_a_typed_count_is_left_as_it_is(tmp_path, typed):
    cfg = config(str(tmp_path / 'no_tower'))
    cfg.train_dataloader.dataset.pipeline[1].num_image_tokens = typed
    assert filled(cfg) == typed


def test_a_config_without_truncation_needs_no_tower(tmp_path):
    cfg = config(str(tmp_path / 'no_tower'))
    cfg.train_dataloader.dataset.pipeline[1].pop('max_length')
    fill_image_token_counts(cfg)
    assert 'num_image_tokens' not in cfg.train_dataloader.dataset.pipeline[1]


def test_the_tools_fill_the_count(clip_tower, tmp_path):
    args = argparse.Namespace(launcher='none', config='x.py',
                              work_dir=str(tmp_path), cfg_options=None,
                              allow_partial_load=False)
    cfg = apply_runner_args(config(clip_tower), args)
    assert cfg.train_dataloader.dataset.pipeline[1].num_image_tokens == 9


def test_no_config_types_an_image_token_count():
    typing = [str(path.relative_to(REPO))
              for path in sorted((REPO / 'configs').rglob('*.py'))
              if 'num_image_tokens' in path.read_text()]
    assert typing == []
