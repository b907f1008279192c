# LLaVA-1.5 stage 2 (instruction tuning): lr 2e-5, global batch 128, 1 epoch,
# cosine decay after 3% linear warmup, no weight decay, grad norm clip 1.0.
_base_ = ['./pretrain_1e.py']

optim_wrapper = dict(optimizer=dict(lr=2e-5))
auto_scale_lr = dict(base_batch_size=128)
