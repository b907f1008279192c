# LLaVA v1 (7B) stage 2: projector and LLM learn on LLaVA-Instruct-158K with
# the `vicuna_v1` template; lr 2e-5, 3 epochs, 8 GPUs x 4 = global batch 32.
_base_ = [
    './_base_/datasets/llava-v1_instruct158k.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='vicuna_v1',
    projector_pretrained='work_dirs/llava-7b-v1_pretrain')
train_cfg = dict(max_epochs=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=0.09, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0.09,
         end=3, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=32)
