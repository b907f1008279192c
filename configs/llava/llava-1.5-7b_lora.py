# LLaVA-1.5-7B stage 2 with LoRA: the LLM learns through rank-128 adapters on
# every linear layer (not the LM head), the projector in full; the official
# recipe (scripts/v1_5/finetune_lora.sh and llava/train/train.py in
# haotian-liu/LLaVA: --lora_r 128 --lora_alpha 256, lora_dropout 0.05, bias
# none, --learning_rate 2e-4 --mm_projector_lr 2e-5, 1 epoch, global batch
# 128, no weight decay, 3% warmup then cosine). See docs/lora.md.
_base_ = ['./llava-1.5-7b_ft.py']

model = dict(lora=dict(r=128, alpha=256, dropout=0.05, target='all-linear'))
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    # The projector at 2e-5: a tenth of the adapters' rate.
    paramwise_cfg=dict(custom_keys={'projector': dict(lr_mult=0.1)}))
