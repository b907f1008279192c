# LLaVA-NeXT Vicuna-7B (LLaVA-1.6, 2024-01) stage 2, visual instruction
# tuning: the whole model learns on the LLaVA-NeXT mix with AnyRes images
# (`spatial_unpad`), `vicuna_v1` template. Stage 1 is LLaVA-1.5's (the
# release re-uses its pretrained connector). lr 2e-5 for the projector and
# LLM, 2e-6 for the vision tower, global batch 128, 1 epoch, cosine after 3%
# warmup, no weight decay.
_base_ = [
    './_base_/datasets/llava-next_instruct.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_vision_encoder=False,
    freeze_llm=False,
    template='vicuna_v1',
    # The LLaVA-1.5 stage-1 result: its work dir (latest checkpoint), a
    # checkpoint, or the official mm_projector.bin. image_newline starts
    # from its random initialisation.
    projector_pretrained='work_dirs/llava-1.5-7b_pretrain')

# 2e-5 for the projector, image_newline and LLM; 0.1 x 2e-5 = 2e-6 for the
# vision tower.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'vision_encoder': dict(lr_mult=0.1)}))
