# Demo stage 1, feature alignment: only the projector learns, on the
# generated scene captions with the `plain` template. Runs on 2 CPU cores.
_base_ = [
    './_base_/datasets/llava-tiny_demo_captions.py',
    './_base_/schedules/pretrain_1e.py',
    './_base_/default_runtime.py',
]

model = dict(freeze_llm=True, template='plain')
default_hooks = dict(
    logger=dict(interval=10),
    # A checkpoint at the end of every epoch: a stopped demo resumes there
    # (tools/run_demo.py --resume).
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=1))

# Does the projector carry anything from the images? The held-out caption
# loss with each scene's own image against shuffled and blank images
# (val/image_gain), before the first step and every 100 iterations.
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='ImageGainHook', data_file='data/demo/eval.json',
         image_folder='data/demo/',
         pipeline=_base_.train_dataloader.dataset.pipeline,
         kinds=('caption', ), max_samples=100, batch_size=25,
         interval=100, at_start=True),
]
