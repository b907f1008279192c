# LLaVA-NeXT SigLIP-SO400M + Qwen1.5-0.5B stage 1.5, high-quality knowledge
# learning: the whole model learns (vision tower, projector, LLM) on detailed
# re-captions and document / OCR data, `qwen_1_5` template, AnyRes images.
# The official stage-1.5 script (..._detcaps_mid.sh): lr 1e-5, vision tower
# lr 2e-6, 1 epoch, cosine after 3% warmup, model_max_length 32768, 1 sample
# per GPU.
_base_ = [
    './_base_/datasets/llava-next-siglip_stage1.5.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    template='qwen_1_5',
    freeze_vision_encoder=False,
    freeze_llm=False,
    # The stage-1 result: its work dir (latest checkpoint), a checkpoint, or
    # the official mm_projector.bin.
    projector_pretrained='work_dirs/llava-next-siglip-so400m-qwen1.5-0.5b_'
    'pretrain')

# 1e-5 for the projector and LLM; 0.2 x 1e-5 = 2e-6 for the vision tower
# (the official mm_vision_tower_lr).
optim_wrapper = dict(
    optimizer=dict(lr=1e-5),
    paramwise_cfg=dict(custom_keys={'vision_encoder': dict(lr_mult=0.2)}))
auto_scale_lr = dict(base_batch_size=8)
