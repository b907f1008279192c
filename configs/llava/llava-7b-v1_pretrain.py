# LLaVA v1 (7B) stage 1: only the linear projector learns, on CC-595K
# captions with the `plain` template; lr 2e-3, 8 GPUs x 16 = global batch 128.
_base_ = [
    './_base_/datasets/llava-v1_cc595k.py',
    './_base_/schedules/pretrain_1e.py',
    './_base_/default_runtime.py',
]

model = dict(freeze_llm=True, template='plain')
optim_wrapper = dict(optimizer=dict(lr=2e-3))
auto_scale_lr = dict(base_batch_size=128)
