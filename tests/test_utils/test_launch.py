"""How a distributed run ends (:func:`close_process_groups`), and the
visualizer backends of ``--vis-backend``."""
import importlib.util
import subprocess
import sys

import pytest
import torch.distributed as dist
from mmengine.config import Config
from mmengine.visualization import Visualizer

from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.launch import apply_vis_backends, close_process_groups

#: Run by torchrun on each rank: a default and a second group, then closed.
RANK_SCRIPT = """
import torch.distributed as dist
from mmllava.utils.launch import close_process_groups
dist.init_process_group('gloo')
dist.new_group([0, 1])
rank = dist.get_rank()
close_process_groups()
print(f'rank {rank} initialized after closing: {dist.is_initialized()}')
"""


@pytest.mark.distributed
def test_every_rank_leaves_with_its_groups_destroyed(tmp_path):
    script = tmp_path / 'close.py'
    script.write_text(RANK_SCRIPT)
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone',
         '--nproc_per_node=2', str(script)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=scaled_timeout(120))
    assert result.returncode == 0, result.stdout[-4000:]
    for rank in range(2):
        assert f'rank {rank} initialized after closing: False' \
            in result.stdout, result.stdout[-4000:]


def test_a_run_without_process_groups_is_left_alone():
    assert not dist.is_initialized()
    close_process_groups()
    assert not dist.is_initialized()


def test_vis_backends_are_added_beside_the_local_one():
    cfg = Config(dict(visualizer=dict(
        type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])))
    cfg = apply_vis_backends(cfg, ['tensorboard'])
    assert cfg.visualizer.vis_backends == [
        dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]


def test_a_vis_backend_without_its_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, 'find_spec',
                        lambda name: None if name == 'wandb' else True)
    with pytest.raises(ImportError, match='--vis-backend wandb needs the '
                       'wandb package: pip install wandb'):
        apply_vis_backends(Config(dict()), ['wandb'])


def test_a_run_logs_to_tensorboard(tmp_path):
    """mmengine's TensorBoard backend, as --vis-backend sets it, writes the
    scalars of a real run."""
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    cfg = apply_vis_backends(Config(dict()), ['tensorboard'])
    visualizer = Visualizer.get_instance(
        'tensorboard_test', vis_backends=cfg.visualizer.vis_backends,
        save_dir=str(tmp_path))
    for step in range(3):
        visualizer.add_scalars(dict(loss=1.0 / (step + 1)), step=step)
    visualizer.close()
    events = EventAccumulator(str(tmp_path / 'vis_data'))
    events.Reload()
    assert [event.value for event in events.Scalars('loss')] == \
        pytest.approx([1.0, 0.5, 1 / 3])
