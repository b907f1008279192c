"""``mmllava/compat``: importing mmllava patches nothing;
``register_all_modules`` applies every fix once and says when a fix was
written for another version than the installed one."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine._strategy import DeepSpeedStrategy

from mmllava.testing.timeouts import scaled_timeout
import mmllava.compat as compat
from mmllava.setup_env import register_all_modules

REPO = Path(__file__).resolve().parents[2]

#: What each fix replaces, as ``module:attribute`` paths, and how the
#: subprocess prints whether it is still the library's own.
PROBE = '''
import json, sys
import torch
from mmengine._strategy import DeepSpeedStrategy, FSDPStrategy
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader
originals = dict(
    getstate=HistoryBuffer.__getstate__, set_device=torch.cuda.set_device,
    ds_save=DeepSpeedStrategy.save_checkpoint,
    ds_build=DeepSpeedStrategy.build_model,
    fsdp_optim=FSDPStrategy.load_optim_state_dict,
    loader=CheckpointLoader._schemes[''],
    safe_globals=len(torch.serialization.get_safe_globals()))
import mmllava, mmllava.apis, mmllava.engine, mmllava.models
import mmllava.datasets, mmllava.evaluation, mmllava.serving
after_import = dict(
    getstate=HistoryBuffer.__getstate__, set_device=torch.cuda.set_device,
    ds_save=DeepSpeedStrategy.save_checkpoint,
    ds_build=DeepSpeedStrategy.build_model,
    fsdp_optim=FSDPStrategy.load_optim_state_dict,
    loader=CheckpointLoader._schemes[''],
    safe_globals=len(torch.serialization.get_safe_globals()))
from mmllava.setup_env import register_all_modules
register_all_modules()
after_setup = dict(
    getstate=HistoryBuffer.__getstate__, set_device=torch.cuda.set_device,
    ds_save=DeepSpeedStrategy.save_checkpoint,
    ds_build=DeepSpeedStrategy.build_model,
    fsdp_optim=FSDPStrategy.load_optim_state_dict,
    loader=CheckpointLoader._schemes[''],
    safe_globals=len(torch.serialization.get_safe_globals()))
print(json.dumps(dict(
    changed_by_import=[key for key in originals
                       if after_import[key] != originals[key]],
    changed_by_setup=[key for key in originals
                      if after_setup[key] != originals[key]])))
'''


@pytest.mark.slow
def test_importing_mmllava_patches_nothing_and_set_up_applies_all():
    run = subprocess.run([sys.executable, '-c', PROBE], cwd=REPO,
                         capture_output=True, text=True,
                         timeout=scaled_timeout(600))
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result['changed_by_import'] == []
    assert sorted(result['changed_by_setup']) == sorted(
        ['getstate', 'set_device', 'ds_save', 'ds_build', 'fsdp_optim',
         'loader', 'safe_globals'])


def test_set_up_twice_applies_each_fix_once():
    register_all_modules()
    resume = DeepSpeedStrategy.resume
    register_all_modules()
    assert DeepSpeedStrategy.resume is resume


def test_a_fix_for_another_version_is_named(monkeypatch):
    versions = dict(mmengine='0.10.8', deepspeed='0.19.8')
    monkeypatch.setattr(compat, 'installed_version', versions.get)
    warnings = compat.version_warnings()
    mmengine_fixes = [fix for fix in compat.FIXES
                      if fix.package == 'mmengine']
    assert len(warnings) == len(mmengine_fixes) == 6
    assert warnings[0] == (
        "mmllava's fix pickle_history_buffers_without_methods was written "
        'for mmengine 0.10.7, and mmengine 0.10.8 is installed: check that '
        'it is still needed and still right.')


def test_an_absent_optional_package_needs_no_warning(monkeypatch):
    versions = dict(mmengine='0.10.7')
    monkeypatch.setattr(compat, 'installed_version', versions.get)
    assert compat.version_warnings() == []


def test_the_pinned_stack_gives_no_warning():
    assert compat.version_warnings() == []
