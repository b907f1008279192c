# DeepSpeed ZeRO-2 (the official LLaVA-1.5 recipe's choice for stage 1):
# optimizer states and gradients are sharded over the processes, weights are
# replicated. `tools/train.py CONFIG --strategy deepspeed_zero2` merges this
# file into CONFIG and moves the recipe's gradient clipping, accumulation
# and micro batch into DeepSpeed's config (mmllava.utils.launch.
# apply_strategy); `--amp` turns on DeepSpeed's bf16 (or fp16) mode.
# Checkpoints are DeepSpeed folders: tools/model_converters/
# consolidate_checkpoint.py turns one into an mmllava checkpoint.
runner_type = 'mmllava.LLaVAFlexibleRunner'  # mmengine's, quiet at the start
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(
        stage=2,
        overlap_comm=True,
        contiguous_gradients=True,
        reduce_bucket_size=5e8,
        allgather_bucket_size=5e8))
