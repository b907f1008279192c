# LLaVA-NeXT SigLIP-SO400M + Qwen1.5-0.5B stage 2, visual instruction tuning:
# the whole model learns on the LLaVA-NeXT instruction mix, `qwen_1_5`
# template, AnyRes images. The official finetune_siglip.sh: lr 1e-5, vision
# tower lr 2e-6, 1 epoch, cosine after 3% warmup, model_max_length 32768,
# 4 samples per GPU.
_base_ = [
    './_base_/datasets/llava-next-siglip_instruct.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(template='qwen_1_5', freeze_vision_encoder=False,
             freeze_llm=False)

# Every weight starts from stage 1.5 (the official stage 2 loads the
# stage-1.5 model): its work dir stands for its latest checkpoint. To skip
# stage 1.5 as finetune_siglip.sh does, set load_from=None and
# model.projector_pretrained to the stage-1 work dir.
load_from = 'work_dirs/llava-next-siglip-so400m-qwen1.5-0.5b_stage1.5'

# 1e-5 for the projector and LLM; 0.2 x 1e-5 = 2e-6 for the vision tower.
optim_wrapper = dict(
    optimizer=dict(lr=1e-5),
    paramwise_cfg=dict(custom_keys={'vision_encoder': dict(lr_mult=0.2)}))
auto_scale_lr = dict(base_batch_size=32)
