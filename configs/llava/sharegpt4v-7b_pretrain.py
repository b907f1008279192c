# ShareGPT4V-7B stage 1, pre-training on ShareGPT4V-PT (1.2M Share-Captioner
# captions): from LLaVA-1.5's stage-1 projector, the latter half of the
# vision tower, the projector and the LLM learn, with the `plain` template.
# The official slurm_pretrain_7b.sh: --tune_entire_model --tune_vit_from_layer
# 12, lr 2e-5, 1 epoch, cosine after 3% warmup, no weight decay, 16 GPUs x 16
# = global batch 256. Here 8 GPUs x 16 x 2 accumulated steps = 256.
_base_ = [
    './_base_/datasets/sharegpt4v_pt1246k.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='plain',
    # CLIP ViT-L/14 has 24 layers; 12-23 learn, 0-11 and the embeddings stay
    # frozen. (Layer 23 feeds only the last hidden state, which select_layer
    # -2 does not read, so it gets no gradient, here as in the official run.)
    vision_encoder=dict(trainable_from_layer=12),
    # LLaVA-1.5's stage-1 result: its work dir (latest checkpoint), a
    # checkpoint, or the official mm_projector.bin.
    projector_pretrained='work_dirs/llava-1.5-7b_pretrain')

train_dataloader = dict(batch_size=16)
optim_wrapper = dict(accumulative_counts=2)
auto_scale_lr = dict(base_batch_size=256)
