# DeepSpeed ZeRO-3 with the optimizer states and the weights offloaded to
# CPU memory (ZeRO-Infinity's CPU offload): the least GPU memory, the most
# host memory and PCIe traffic. The recipe's AdamW becomes DeepSpeed's CPU
# Adam (same update, adamw_mode), which DeepSpeed requires for an offloaded
# optimizer; it is compiled on first use. See deepspeed_zero2.py for how
# tools/train.py uses this file.
_base_ = ['./deepspeed_zero3.py']

strategy = dict(
    zero_optimization=dict(
        offload_optimizer=dict(device='cpu', pin_memory=True),
        offload_param=dict(device='cpu', pin_memory=True)))
