"""``mmllava/apis/get_model.py``: names, config files and Configs to a
model in eval mode, with a checkpoint or a work dir loaded exactly."""
import shutil

import pytest
import torch
from mmengine.config import Config

from mmllava.apis import get_model, load_pretrained
from mmllava.model_index import find_model

pytestmark = pytest.mark.usefixtures('one_thread')


def assert_state_equal(model, state_dict):
    state = model.state_dict()
    assert state.keys() == state_dict.keys()
    for key, value in state_dict.items():
        assert torch.equal(state[key], value), f'{key} differs'


@pytest.mark.slow
def test_pretrained_checkpoint_loads_exactly(in_workspace):
    saved = torch.load(in_workspace / 'ft.pth', weights_only=True)
    model = get_model('llava-tiny_demo_vqa', pretrained='ft.pth')
    assert_state_equal(model, saved['state_dict'])
    # The checkpoint differs from the weights the config's folders hold.
    fresh = get_model('llava-tiny_demo_vqa')
    assert not torch.equal(fresh.projector[0].weight,
                           saved['state_dict']['projector.0.weight'])


def test_model_is_ready_for_inference(in_workspace):
    model = get_model('llava-tiny_demo_caption', pretrained='ft.pth',
                      device='cpu')
    assert not model.training
    assert {p.device.type for p in model.parameters()} == {'cpu'}
    assert model.data_preprocessor.device.type == 'cpu'
    assert model.cfg.inference.task == 'caption'
    assert 'test_pipeline' in model.cfg


def test_pretrained_work_dir_loads_its_latest_checkpoint(in_workspace,
                                                         tmp_path):
    checkpoint = tmp_path / 'epoch_1.pth'
    shutil.copyfile(in_workspace / 'ft.pth', checkpoint)
    (tmp_path / 'last_checkpoint').write_text(str(checkpoint))
    model = get_model('llava-tiny_demo_vqa', pretrained=tmp_path)
    saved = torch.load(checkpoint, weights_only=True)
    assert_state_equal(model, saved['state_dict'])


@pytest.mark.slow
def test_config_file_and_config_object(in_workspace):
    path = find_model('llava-tiny_demo_vqa').config
    from_file = get_model(path, pretrained='ft.pth')
    from_config = get_model(Config.fromfile(path), pretrained='ft.pth')
    assert from_file.cfg.inference == from_config.cfg.inference
    assert_state_equal(from_config, from_file.state_dict())


def test_kwargs_merge_into_the_model_config(in_workspace):
    model = get_model('llava-tiny_demo_vqa',
                      generation_cfg=dict(max_new_tokens=6))
    # Merged as in mmpretrain: the config's other keys stay.
    assert model.generation_cfg == dict(max_new_tokens=6, do_sample=False)
    assert model.cfg.model.generation_cfg.max_new_tokens == 6
    with pytest.raises(TypeError, match='unexpected keyword'):
        get_model('llava-tiny_demo_vqa', no_such_option=1)


def test_checkpoint_weights_replace_projector_pretrained(in_workspace):
    """A stage-2 config names its stage-1 projector, which a finished model
    no longer needs (and which may be gone)."""
    model = get_model('llava-tiny_demo_vqa', pretrained='ft.pth',
                      projector_pretrained='work_dirs/deleted_stage1')
    assert 'projector_pretrained' in model.cfg.model


def test_unknown_name_fails_listing_close_names():
    with pytest.raises(ValueError, match="Unknown model 'llava-tiny_vqa'.*"
                       "'llava-tiny_demo_vqa'"):
        get_model('llava-tiny_vqa')


def test_missing_files_fail_naming_them(in_workspace):
    with pytest.raises(FileNotFoundError, match='work_dirs/no_such_run'):
        get_model('llava-tiny_demo_vqa', pretrained='work_dirs/no_such_run')
    with pytest.raises(FileNotFoundError, match='no_such_config.py'):
        get_model('configs/no_such_config.py')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_pretrained(torch.nn.Linear(1, 1), 'missing.pth')
    with pytest.raises(TypeError, match='model name, a config path'):
        get_model(42)


def test_work_dir_without_checkpoint_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match='last_checkpoint'):
        load_pretrained(torch.nn.Linear(1, 1), tmp_path)


def test_wrong_checkpoint_fails_strictly(in_workspace, tmp_path):
    state = torch.load(in_workspace / 'ft.pth', weights_only=True)
    del state['state_dict']['projector.0.weight']
    torch.save(state, tmp_path / 'partial.pth')
    with pytest.raises(RuntimeError, match='projector.0.weight'):
        get_model('llava-tiny_demo_vqa', pretrained=tmp_path / 'partial.pth')
