"""How a distributed run ends (:func:`close_process_groups`)."""
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from mmllava.utils.launch import close_process_groups

WORLD_SIZE = 2


def close_on_rank(rank: int, init_file: str, report_dir: str) -> None:
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=WORLD_SIZE)
    dist.new_group([0, 1])
    close_process_groups()
    Path(report_dir, f'rank{rank}').write_text(str(dist.is_initialized()))


def test_every_rank_leaves_with_its_groups_destroyed(tmp_path):
    # Forked: spawned children could not import this test module.
    mp.start_processes(close_on_rank,
                       args=(str(tmp_path / 'init'), str(tmp_path)),
                       nprocs=WORLD_SIZE, start_method='fork')
    assert [(tmp_path / f'rank{rank}').read_text()
            for rank in range(WORLD_SIZE)] == ['False'] * WORLD_SIZE


def test_a_run_without_process_groups_is_left_alone():
    assert not dist.is_initialized()
    close_process_groups()
    assert not dist.is_initialized()
