"""A lock left by a killed extension build is named before DeepSpeed's
CPU Adam build would wait on it forever."""
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmllava.utils.extension_locks import build_lock_warning
from mmllava.utils.launch import apply_strategy


def test_no_lock_no_warning(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    (tmp_path / 'cpu_adam').mkdir()
    assert build_lock_warning('cpu_adam') is None


def test_a_leftover_lock_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    lock = tmp_path / 'cpu_adam' / 'lock'
    lock.parent.mkdir()
    lock.touch()
    warning = build_lock_warning('cpu_adam')
    assert str(lock) in warning and 'delete the file' in warning
    assert build_lock_warning('fused_adam') is None


def test_the_offload_strategy_warns_before_the_build(tmp_path, monkeypatch,
                                                     capsys):
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    lock = tmp_path / 'cpu_adam' / 'lock'
    lock.parent.mkdir()
    lock.touch()
    cfg = Config(dict(
        strategy=dict(type='DeepSpeedStrategy', zero_optimization=dict(
            stage=3, offload_optimizer=dict(device='cpu'))),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_dataloader=dict(batch_size=2)))
    MMLogger.get_instance('test_extension_locks')
    apply_strategy(cfg)
    assert cfg.optim_wrapper.optimizer.type == 'DeepSpeedCPUAdam'
    assert str(lock) in capsys.readouterr().out
