# PyTorch FSDP: weights, gradients and optimizer states sharded, each
# wrapped block gathered for its forward and backward. Not ready for the
# recipes: saving a checkpoint fails and gradient clipping sees one shard
# (docs/distributed.md). Checkpoints are to hold the full state, gathered
# on rank 0, so that they load like any mmllava checkpoint.
# `tools/train.py CONFIG --strategy fsdp` merges this file into CONFIG; on a
# machine without CUDA the processes run on the CPU (gloo).
runner_type = 'mmllava.LLaVAFlexibleRunner'  # mmengine's, quiet at the start
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(type='MMFullyShardedDataParallel',
                       use_orig_params=True),
    state_dict_cfg='full')
