"""tools/run_demo.py's bookkeeping: folders made whole or not at all, and
what ``--resume`` keeps, resumes and retrains (the training itself is
tests/test_demo/test_demo_end_to_end.py)."""
import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / 'tools/run_demo.py'


@pytest.fixture(scope='module')
def run_demo():
    spec = importlib.util.spec_from_file_location('run_demo', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_folder_appears_only_when_complete(run_demo, tmp_path):
    target = tmp_path / 'llm'
    with pytest.raises(KeyboardInterrupt):
        with run_demo.building(target) as folder:
            (folder / 'config.json').write_text('{}')
            raise KeyboardInterrupt  # killed half-way
    assert not target.exists()
    # The next run starts the folder afresh and moves it into place.
    with run_demo.building(target) as folder:
        assert not (folder / 'config.json').exists()
        (folder / 'model.safetensors').write_text('weights')
    assert (target / 'model.safetensors').read_text() == 'weights'
    assert not (tmp_path / 'llm.partial').exists()


@pytest.fixture
def commands(run_demo, monkeypatch):
    """The tools run_demo would start, recorded instead of run."""
    started = []
    monkeypatch.setattr(run_demo, 'run_tool',
                        lambda tool, *args: started.append([tool, *args]))
    return started


def test_a_fresh_run_trains_every_stage_in_an_emptied_work_dir(
        run_demo, commands, tmp_path):
    work_dir = tmp_path / 'stage'
    work_dir.mkdir()
    (work_dir / 'old.log').write_text('an earlier run')
    (work_dir / 'last_checkpoint').write_text('epoch_1.pth')
    run_demo.train(Path('stage.py'), work_dir, ['a=1'], resume=False)
    assert commands == [['train.py', 'stage.py', '--work-dir', str(work_dir),
                         '--cfg-options', 'a=1']]
    assert not (work_dir / 'old.log').exists()
    assert (work_dir / run_demo.STAGE_DONE).is_file()


def test_resume_keeps_finished_stages_and_resumes_the_rest(
        run_demo, commands, tmp_path):
    finished, stopped, unstarted = (tmp_path / name for name in
                                    ('finished', 'stopped', 'unstarted'))
    finished.mkdir()
    (finished / run_demo.STAGE_DONE).write_text('')
    stopped.mkdir()
    (stopped / 'last_checkpoint').write_text('epoch_1.pth')
    for work_dir in (finished, stopped, unstarted):
        run_demo.train(Path('stage.py'), work_dir, [], resume=True)
    assert commands == [
        ['train.py', 'stage.py', '--work-dir', str(stopped), '--resume'],
        ['train.py', 'stage.py', '--work-dir', str(unstarted)]]
    assert (stopped / 'last_checkpoint').is_file()
    assert all((work_dir / run_demo.STAGE_DONE).is_file()
               for work_dir in (finished, stopped, unstarted))


def test_a_stage_that_fails_is_not_marked_finished(run_demo, monkeypatch,
                                                    tmp_path):
    def fail(tool, *args):
        raise SystemExit(1)

    monkeypatch.setattr(run_demo, 'run_tool', fail)
    with pytest.raises(SystemExit):
        run_demo.train(Path('stage.py'), tmp_path / 'stage', [],
                       resume=False)
    assert not (tmp_path / 'stage' / run_demo.STAGE_DONE).exists()


def test_assets_of_an_earlier_demo_are_refused_by_name(run_demo, tmp_path):
    demo = dict(vision_config=dict(patch_size=16, hidden_size=128),
                num_train=3)
    data, tower = tmp_path / 'data', tmp_path / 'weights/vision_encoder'
    data.mkdir()
    tower.mkdir(parents=True)
    scenes = [dict(split='train')] * 3 + [dict(split='eval')]
    (data / 'scenes.json').write_text(json.dumps(dict(scenes=scenes)))
    (tower / 'config.json').write_text(
        json.dumps(dict(patch_size=16, hidden_size=128)))
    run_demo.check_made_as_configured(data, tower, demo)  # as configured
    (tower / 'config.json').write_text(
        json.dumps(dict(patch_size=8, hidden_size=128)))
    with pytest.raises(SystemExit, match=r'patch_size 8 \(config: 16\)'):
        run_demo.check_made_as_configured(data, tower, demo)
