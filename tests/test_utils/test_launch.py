"""How a distributed run ends (:func:`close_process_groups`)."""
import subprocess
import sys

import torch.distributed as dist

from mmllava.testing.timeouts import scaled_timeout
from mmllava.utils.launch import close_process_groups

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
