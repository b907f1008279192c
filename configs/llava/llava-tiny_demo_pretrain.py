# Demo stage 1, feature alignment: only the projector learns, on the
# generated scene captions with the `plain` template. Runs on 2 CPU cores.
_base_ = [
    './_base_/datasets/llava-tiny_demo_captions.py',
    './_base_/schedules/pretrain_1e.py',
    './_base_/default_runtime.py',
]

model = dict(freeze_llm=True, template='plain')
train_cfg = dict(max_epochs=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=0.06, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0.06,
         end=2, convert_to_iter_based=True),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100000, max_keep_ckpts=1))
