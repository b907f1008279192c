default_scope = 'mmllava'
# mmengine's Runner; the environment, config and hook table go to the log
# file only (mmllava/engine/runners.py).
runner_type = 'mmllava.LLaVARunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Stage 1 saves the full resumable state too (the official code saves
    # only the projector). Written atomically, and the oldest is deleted
    # only after `last_checkpoint` names the new one: a kill at any moment
    # leaves a checkpoint that --resume loads.
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                    interval=1000, max_keep_ckpts=2, save_last=True,
                    backend_args=dict(backend='atomic_local')),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # RNG states in each checkpoint, restored on resume (bit-exact resume).
    # A default hook, so that configs replacing custom_hooks keep it.
    rng_state=dict(type='RNGStateHook'),
    # A checkpoint that does not fit the model (another width, a LoRA run,
    # another projector) stops the run, listing the keys; allow_partial=True
    # (--allow-partial-load) loads what fits on purpose.
    strict_load=dict(type='StrictLoadHook'),
)
# A NaN or inf loss stops the run, naming the iteration and the samples. A
# config that sets its own custom_hooks replaces this list: keep it there.
custom_hooks = [dict(type='NonFiniteLossHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

log_processor = dict(by_epoch=True, window_size=10)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=42)
