"""``mmllava/utils/config_checks.py``: a misspelled top-level key is
warned about with the key it is close to, a ``--cfg-options`` value of the
wrong type stops the tools, naming the key and the type, and a model and
pipelines that disagree on the template, the tokenizer or a typed
image-token count are refused, naming both values."""
import argparse
from pathlib import Path

import pytest
from mmengine.config import Config, DictAction
from transformers import CLIPVisionConfig, SiglipVisionConfig

from mmllava.utils.config_checks import (check_option_types,
                                         check_settings_agree,
                                         warn_unknown_top_level_keys)
from mmllava.utils.image_token_counts import fill_image_token_counts
from mmllava.utils.launch import apply_runner_args
from mmllava.utils.runner_pipelines import runner_tokenize_steps

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / 'configs/llava').glob('*.py'))


def test_a_misspelled_top_level_key_names_the_known_one():
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(lr=1e-3)),
                      optim_wraper=dict(optimizer=dict(lr=0.5)),
                      trian_cfg=dict(max_epochs=3)))
    warnings = warn_unknown_top_level_keys(cfg)
    assert len(warnings) == 2
    assert "'optim_wraper' is read by nothing" in warnings[0]
    assert "did you mean 'optim_wrapper'?" in warnings[0]
    assert "did you mean 'train_cfg'?" in warnings[1]


def test_a_config_s_own_variables_are_not_typos():
    cfg = Config(dict(test_pipeline=[], tokenizer=dict(), demo_root='x',
                      vision_encoder_path='y', model=dict()))
    assert warn_unknown_top_level_keys(cfg) == []


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.stem)
def test_no_recipe_warns(config):
    assert warn_unknown_top_level_keys(Config.fromfile(str(config))) == []


def parse_options(*options: str) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


RECIPE = dict(optim_wrapper=dict(optimizer=dict(type='AdamW', lr=2e-5)),
              train_cfg=dict(max_epochs=1),
              model=dict(freeze_llm=True, template='vicuna_v1'),
              param_scheduler=[dict(type='LinearLR', end=0.03)])


@pytest.mark.parametrize('option, needed', [
    ('optim_wrapper.optimizer.lr=abc', 'a number (float)'),
    ('train_cfg.max_epochs=three', 'a number (int)'),
    ('model.freeze_llm=yes', 'a bool (True or False)'),
    ('param_scheduler.0.end=half', 'a number (float)'),
])
def test_an_option_of_the_wrong_type_is_refused(option, needed):
    key, value = option.split('=')
    with pytest.raises(ValueError) as error:
        check_option_types(Config(RECIPE), parse_options(option))
    assert str(error.value).startswith(
        f"--cfg-options {key}={value}: '{value}' is not {needed}")


@pytest.mark.parametrize('option', [
    'optim_wrapper.optimizer.lr=3e-4', 'optim_wrapper.optimizer.lr=1',
    'model.freeze_llm=False', 'model.template=plain',
    'model.new_key=anything', 'train_cfg.val_interval=2'])
def test_options_of_the_right_type_or_new_keys_pass(option):
    check_option_types(Config(RECIPE), parse_options(option))


def test_the_tools_check_options_before_merging():
    args = argparse.Namespace(
        launcher='none', config='x.py', work_dir='w',
        allow_partial_load=False,
        cfg_options=parse_options('optim_wrapper.optimizer.lr=abc'))
    cfg = Config(RECIPE)
    with pytest.raises(ValueError, match='optim_wrapper.optimizer.lr=abc'):
        apply_runner_args(cfg, args)
    assert cfg.optim_wrapper.optimizer.lr == 2e-5


def test_the_tools_turn_on_the_strict_load_check():
    args = argparse.Namespace(launcher='none', config='x.py', work_dir='w',
                              cfg_options=None, allow_partial_load=False)
    cfg = apply_runner_args(Config(dict(default_hooks=dict())), args)
    assert cfg.default_hooks.strict_load == dict(type='StrictLoadHook')
    args.allow_partial_load = True
    cfg = apply_runner_args(Config(RECIPE), args)
    assert cfg.default_hooks.strict_load.allow_partial is True


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: path.stem)
def test_every_recipe_s_model_and_pipelines_agree(config):
    check_settings_agree(Config.fromfile(str(config)))


DEMO_FT = REPO / 'configs/llava/llava-tiny_demo_ft.py'


def test_the_check_reads_the_runner_s_pipelines():
    found = runner_tokenize_steps(Config.fromfile(str(DEMO_FT)))
    # The demo's stage 2 tests in its own test configs.
    assert sorted(key for key, _ in found) == [
        'custom_hooks.1.pipeline.2', 'custom_hooks.2.pipeline.2',
        'train_dataloader.dataset.pipeline.2',
        'val_dataloader.dataset.pipeline.2']


def test_a_pipeline_with_another_template_is_refused():
    cfg = Config.fromfile(str(DEMO_FT))
    cfg.train_dataloader.dataset.pipeline[2].template = 'llava_v1'
    with pytest.raises(ValueError) as error:
        check_settings_agree(cfg)
    assert str(error.value) == (
        "model.template is 'vicuna_v1' but "
        "train_dataloader.dataset.pipeline.2.template is 'llava_v1': the "
        'model and its data must use the same one.')


def test_a_pipeline_with_another_tokenizer_is_refused():
    cfg = Config.fromfile(str(DEMO_FT))
    cfg.val_dataloader.dataset.pipeline[2].tokenizer.pretrained = 'other/'
    with pytest.raises(ValueError, match=r"val_dataloader.dataset.pipeline"
                       r".2.tokenizer.pretrained is 'other/'"):
        check_settings_agree(cfg)


@pytest.mark.parametrize('select_feature, rows', [('patch', 9),
                                                   ('cls_patch', 10)])
def test_image_tokens_are_checked_against_the_tower(tmp_path, select_feature,
                                                    rows):
    CLIPVisionConfig(image_size=48, patch_size=16).save_pretrained(tmp_path)
    cfg = Config.fromfile(str(DEMO_FT))
    cfg.model.vision_encoder.pretrained = str(tmp_path)
    cfg.model.vision_encoder.select_feature = select_feature
    fill_image_token_counts(cfg)
    assert cfg.train_dataloader.dataset.pipeline[2].num_image_tokens == rows
    check_settings_agree(cfg)
    cfg.train_dataloader.dataset.pipeline[2].num_image_tokens = 576
    with pytest.raises(ValueError) as error:
        check_settings_agree(cfg)
    assert str(error.value).startswith(
        'train_dataloader.dataset.pipeline.2.num_image_tokens is 576, but '
        f'the tower {tmp_path} gives {rows} feature rows an image')


ONEVISION = REPO / 'configs/llava' / \
    'llava-onevision-siglip-so400m-qwen2-0.5b_si.py'


@pytest.mark.parametrize('key, value, message', [
    ('anyres_max', None,
     'model.anyres_max is 9 but train_dataloader.dataset.pipeline.2.'
     'num_image_tokens.anyres_max is None'),
    ('merge_type', 'flat',
     "model.mm_patch_merge_type is 'spatial_unpad' but train_dataloader."
     "dataset.pipeline.2.num_image_tokens.merge_type is 'flat'"),
    ('grid_pinpoints', [(384, 768)],
     'model.image_grid_pinpoints is [[384, 384], [768, 384], '),
], ids=['anyres_max', 'merge_type', 'grid_pinpoints'])
def test_an_anyres_count_other_than_the_model_s_is_refused(
        tmp_path, key, value, message):
    """Truncation counting rows with other grids, another merge or another
    budget than the model's would cut samples at the wrong place."""
    SiglipVisionConfig(image_size=384, patch_size=14).save_pretrained(
        tmp_path)
    cfg = Config.fromfile(str(ONEVISION))
    cfg.model.vision_encoder.pretrained = str(tmp_path)
    fill_image_token_counts(cfg)
    check_settings_agree(cfg)
    cfg.train_dataloader.dataset.pipeline[2].num_image_tokens[key] = value
    with pytest.raises(ValueError) as error:
        check_settings_agree(cfg)
    assert str(error.value).startswith(message)
    assert str(error.value).endswith('truncation would count other image '
                                     'rows than the model makes.')
