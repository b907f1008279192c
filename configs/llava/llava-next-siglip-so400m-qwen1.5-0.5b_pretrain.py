# LLaVA-NeXT SigLIP-SO400M + Qwen1.5-0.5B stage 1, language-image alignment:
# only the projector learns, on LCS-558K with the `plain` template, one
# 384-px tile per image (AnyRes and the learned image_newline start in stage
# 1.5). The official 0.5B script: lr 1e-3, 1 epoch, cosine after 3% warmup,
# 32 per GPU x 2 accumulation steps (512 on an 8-GPU node).
_base_ = [
    './_base_/datasets/llava-next-siglip_lcs558k.py',
    './_base_/schedules/pretrain_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    template='plain',
    freeze_vision_encoder=True,
    freeze_llm=True,
    image_aspect_ratio='pad',
    image_grid_pinpoints=None,
    mm_patch_merge_type='flat')

optim_wrapper = dict(accumulative_counts=2)
auto_scale_lr = dict(base_batch_size=512)
