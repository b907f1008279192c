# LLaVA-1.5 stage 1 (feature alignment): lr 1e-3, global batch 256, 1 epoch,
# cosine decay after 3% linear warmup, no weight decay, grad norm clip 1.0.
# The guarded wrapper skips a step whose gradient is zero (every label masked)
# or NaN/inf, so neither moves the weights.
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.0),
    clip_grad=dict(max_norm=1.0),
)

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=0.03, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0.03,
         end=1, convert_to_iter_based=True),
]

# Resumes mid-epoch from the iteration checkpoints without repeating batches.
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=1)

# The recipe's global batch; `--auto-scale-lr` style scaling keys off it.
auto_scale_lr = dict(base_batch_size=256, enable=False)
