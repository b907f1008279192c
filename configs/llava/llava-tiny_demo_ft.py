# Demo stage 2, instruction tuning: projector and LLM learn on the generated
# instruction data with the `vicuna_v1` template, from the stage-1 projector.
_base_ = [
    './_base_/datasets/llava-tiny_demo_instruct.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='vicuna_v1',
    projector_pretrained='work_dirs/llava-tiny_demo_pretrain')
# The recipe's 2e-5 at batch 128 suits a 7B LLM; the toy LLM learns fastest
# (per CPU second) with more, smaller steps at a larger rate.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100000, max_keep_ckpts=1))
