"""ZeRO-3 in this one process: a world of one rank, the model built inside
``deepspeed.zero.Init`` (transformers does so while an ``HfDeepSpeedConfig``
of stage 3 lives, as mmllava's DeepSpeed strategy arranges), trained through
the DeepSpeed engine. One rank holds every partition, so this checks the
partitioned build, the engine's gathering and its optimizer, not the
communication between ranks (tests/test_distributed covers that on the
CPU with two processes)."""
import os
import socket

import torch

from mmllava.registry import MODELS
from mmllava.utils.parameters import is_partitioned

from gpu_check_parts.checks import LR, Context, loss_row, train_losses
from gpu_check_parts.models import check_config
from gpu_check_parts.report import FAIL, Row

#: mmllava's deepspeed_zero3 strategy, less its bucket sizes (a model this
#: small fits any), with every parameter partitioned (none kept whole for
#: being small).
ZERO3 = dict(stage=3, overlap_comm=True, contiguous_gradients=True,
             stage3_param_persistence_threshold=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def init_one_rank(device: str) -> None:
    """A process group of this process alone (NCCL on CUDA, gloo on the
    CPU)."""
    import deepspeed
    for key, value in dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=free_port(),
                           RANK=0, LOCAL_RANK=0, WORLD_SIZE=1,
                           LOCAL_WORLD_SIZE=1).items():
        os.environ.setdefault(key, str(value))
    deepspeed.init_distributed(
        dist_backend='nccl' if device.startswith('cuda') else 'gloo',
        auto_mpi_discovery=False)


def zero3(context: Context) -> Row:
    """bf16 on CUDA (the recipe's ``--amp``), float32 on the CPU."""
    import deepspeed
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config
    bf16 = context.device.startswith('cuda')
    config = dict(train_micro_batch_size_per_gpu=context.sizes.batch_size,
                  gradient_accumulation_steps=1, zero_optimization=ZERO3,
                  bf16=dict(enabled=bf16), steps_per_print=2**31,
                  wall_clock_breakdown=False)
    started = not torch.distributed.is_initialized()
    if started:
        init_one_rank(context.device)
    hf_config = HfDeepSpeedConfig(config)
    try:
        torch.manual_seed(context.seed)
        model = MODELS.build(check_config(context.sizes, context.folders))
        partitioned = sum(is_partitioned(p) for p in model.parameters())
        total = len(list(model.parameters()))
        # As mmllava's strategy does: what mmllava built itself (the
        # projector) takes the engine's dtype beside the partitions.
        if bf16:
            for param in model.parameters():
                if not is_partitioned(param):
                    param.data = param.data.to(torch.bfloat16)
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=LR)
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer,
                                          config=config)
        model.data_preprocessor.to(engine.device)

        def step(loss: torch.Tensor) -> None:
            engine.backward(loss)
            engine.step()

        losses, _ = train_losses(engine, context.batches, context.device,
                                 step=step)
    finally:
        # Later builds in this process are plain ones again.
        unset_hf_deepspeed_config()
        del hf_config
        if started:
            torch.distributed.destroy_process_group()
    row = loss_row(losses, context.twin(), 'bf16' if bf16 else 'fp32',
                   f'{partitioned} of {total} parameters built partitioned',
                   partitioned=partitioned, parameters=total)
    # The tower and the LLM come from transformers, inside zero.Init; only
    # the projector is built whole and partitioned by the engine.
    if partitioned < total - len(list(model.projector.parameters())):
        row.status, row.reason = FAIL, 'the model was not built partitioned'
    return row
