# DeepSpeed ZeRO-3 (the official LLaVA-1.5 recipe's choice for stage 2):
# weights, gradients and optimizer states are all sharded; each layer's
# weights are gathered for its forward and backward. See
# deepspeed_zero2.py for how tools/train.py uses this file.
runner_type = 'mmllava.LLaVAFlexibleRunner'  # mmengine's, quiet at the start
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(
        stage=3,
        overlap_comm=True,
        contiguous_gradients=True,
        reduce_bucket_size=5e8,
        stage3_prefetch_bucket_size=5e8,
        stage3_param_persistence_threshold=1e6,
        stage3_max_live_parameters=1e9,
        stage3_max_reuse_distance=1e9))
