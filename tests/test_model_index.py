"""``mmllava/model_index.py``: the metafile's names, tasks and configs."""
from pathlib import Path

import pytest
import yaml
from mmengine.config import Config

from mmllava.model_index import (TASKS, find_model, list_models,
                                 load_model_index, read_metafile)

REPO = Path(__file__).resolve().parents[1]
CAPTION_MODELS = ['llava-1.5-7b_caption', 'llava-7b-v1_caption',
                  'llava-tiny_demo_caption']
VQA_MODELS = ['llava-1.5-7b_gqa', 'llava-1.5-7b_mme', 'llava-1.5-7b_pope',
              'llava-1.5-7b_scienceqa', 'llava-1.5-7b_textvqa',
              'llava-1.5-7b_vizwiz', 'llava-1.5-7b_vqa',
              'llava-tiny_demo_vqa']


def test_list_models_by_pattern_and_task():
    assert list_models() == sorted(CAPTION_MODELS + VQA_MODELS)
    assert list_models(task='caption') == CAPTION_MODELS
    assert list_models(task='vqa') == VQA_MODELS
    assert list_models('*_caption') == CAPTION_MODELS
    # A pattern matches as a prefix, as in mmpretrain.
    assert list_models('llava-tiny') == ['llava-tiny_demo_caption',
                                         'llava-tiny_demo_vqa']
    assert list_models('llava-1.5-7b_*vqa', task='vqa') == [
        'llava-1.5-7b_textvqa', 'llava-1.5-7b_vqa']
    assert list_models('nothing-like-this') == []


def test_unknown_task_fails_naming_the_tasks():
    with pytest.raises(ValueError, match="'segmentation'.*caption.*vqa"):
        list_models(task='segmentation')


def test_unknown_name_lists_close_names():
    with pytest.raises(ValueError, match="'llava-tiny_demo_vqa'"):
        find_model('llava-tiny_demo-vqa')
    with pytest.raises(ValueError, match='Known models: .*llava-1.5-7b_pope'):
        find_model('resnet50')


def test_configs_resolve_from_the_repository_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    info = find_model('llava-1.5-7b_vqa')
    assert info.config == str(REPO / 'configs/llava/llava-1.5-7b_vqav2.py')
    assert (info.collection, info.task) == ('LLaVA-1.5', 'vqa')


@pytest.mark.parametrize('name', CAPTION_MODELS + VQA_MODELS)
def test_every_config_exists_and_matches_its_task(name):
    info = find_model(name)
    assert Path(info.config).is_file(), f'{name}: missing {info.config}'
    config = Config.fromfile(info.config)
    assert config.inference.task == info.task
    assert {'model', 'test_pipeline'} <= set(config)


def test_metafile_layout():
    """mmpretrain's model-index layout, with no weights to download."""
    index = yaml.safe_load((REPO / 'configs/llava/metafile.yml').read_text())
    collections = {item['Name']: item for item in index['Collections']}
    assert set(collections) == {'LLaVA', 'LLaVA-1.5'}
    assert all(item['Paper']['URL'].startswith('https://arxiv.org/')
               for item in collections.values())
    for entry in index['Models']:
        assert set(entry) == {'Name', 'In Collection', 'Config', 'Metadata'}
        assert entry['Metadata']['Task'] in TASKS
    assert len(load_model_index()) == len(index['Models'])


def test_bad_metafiles_fail_loudly(tmp_path):
    metafile = tmp_path / 'metafile.yml'
    entry = dict(Name='m', Config='configs/m.py', Metadata=dict(Task='vqa'))
    metafile.write_text(yaml.safe_dump(dict(
        Collections=[dict(Name='LLaVA')],
        Models=[dict(entry, **{'In Collection': 'LLaVA-2'})])))
    with pytest.raises(ValueError, match="collection 'LLaVA-2'"):
        read_metafile(metafile)
    metafile.write_text(yaml.safe_dump(dict(
        Collections=[dict(Name='LLaVA')],
        Models=[dict(entry, **{'In Collection': 'LLaVA'},
                     Metadata=dict(Task='retrieval'))])))
    with pytest.raises(ValueError, match="task 'retrieval'"):
        read_metafile(metafile)
