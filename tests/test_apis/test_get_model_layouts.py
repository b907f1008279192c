"""``get_model(pretrained=...)`` detects the layout: an mmllava checkpoint,
an official LLaVA folder, a llava-hf folder or mmpretrain's LLaVA file, each
loaded exactly; a folder in no known layout fails listing the layouts looked
for."""
import pytest
import torch

from mmllava.apis import get_model
from mmllava.converters.layouts import detect_layout
from mmllava.converters.llava_hf import convert_mmllava_to_hf
from mmllava.converters.official import convert_mmllava_to_official

pytestmark = pytest.mark.usefixtures('one_thread')

NAME = 'llava-tiny_demo_vqa'


def assert_loads_the_checkpoint(model, workspace):
    saved = torch.load(workspace / 'ft.pth', weights_only=True)['state_dict']
    state = model.state_dict()
    assert state.keys() == saved.keys()
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


@pytest.mark.slow
def test_llava_hf_folder(in_workspace, tmp_path):
    out = convert_mmllava_to_hf(NAME, 'ft.pth', str(tmp_path / 'hf'))
    assert detect_layout(out) == 'llava-hf'
    # The export grew the vocabulary by <image> and <pad>; the model the
    # config builds takes back the original rows, bit for bit.
    assert_loads_the_checkpoint(get_model(NAME, pretrained=out), in_workspace)


@pytest.mark.parametrize('with_tower', [True, False])
def test_official_folder(in_workspace, tmp_path, with_tower):
    out = convert_mmllava_to_official(NAME, 'ft.pth', str(tmp_path / 'off'),
                                      include_vision_tower=with_tower)
    assert detect_layout(out) == 'official'
    assert_loads_the_checkpoint(get_model(NAME, pretrained=out), in_workspace)


def test_mmllava_checkpoint_and_work_dir(in_workspace):
    assert detect_layout('ft.pth') == 'mmllava'
    assert_loads_the_checkpoint(get_model(NAME, pretrained='ft.pth'),
                                in_workspace)


@pytest.mark.slow
def test_mmpretrain_file(in_workspace, tmp_path):
    # mmpretrain's llava-delta2mmpre.py output: the official keys under
    # model.lang_encoder., no tower.
    saved = torch.load(in_workspace / 'ft.pth', weights_only=True)[
        'state_dict']
    state = {}
    for key, value in saved.items():
        if key.startswith('llm.'):
            state['model.lang_encoder.' + key[len('llm.'):]] = value
        elif key.startswith('projector.'):
            state['model.lang_encoder.model.mm_projector.'
                  + key[len('projector.'):]] = value
    torch.save(state, tmp_path / 'llava.pth')
    assert detect_layout(tmp_path / 'llava.pth') == 'mmpretrain'
    # The tower: the config's (kept), or a transformers CLIP folder.
    for tower in (None, 'checkpoints/demo/vision_encoder'):
        assert_loads_the_checkpoint(
            get_model(NAME, pretrained=tmp_path / 'llava.pth',
                      vision_tower=tower), in_workspace)
    del state['model.lang_encoder.model.mm_projector.0.weight']
    torch.save(state, tmp_path / 'partial.pth')
    with pytest.raises(KeyError, match=r'partial\.pth: 1 weights of the '
                       r'built model.*projector\.0\.weight'):
        get_model(NAME, pretrained=tmp_path / 'partial.pth')


def test_unknown_layout_lists_the_layouts(in_workspace, tmp_path):
    (tmp_path / 'config.json').write_text('{"model_type": "bert"}')
    with pytest.raises(FileNotFoundError) as error:
        get_model(NAME, pretrained=tmp_path)
    message = str(error.value)
    for layout in ('mmllava', 'official', 'llava-hf', 'mmpretrain',
                   'last_checkpoint', 'mm_projector_type',
                   'model_type "llava"', 'model.lang_encoder.*'):
        assert layout in message
