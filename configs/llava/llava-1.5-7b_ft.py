# LLaVA-1.5-7B stage 2, instruction tuning: projector and LLM learn on the
# 665K mix with the `vicuna_v1` template. 8 GPUs x 16 = global batch 128.
_base_ = [
    './_base_/datasets/llava-1.5_mix665k.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='vicuna_v1',
    # The stage-1 result: its work dir (latest checkpoint), a checkpoint, or
    # the official mm_projector.bin.
    projector_pretrained='work_dirs/llava-1.5-7b_pretrain')
