"""Each CUDA path for a few AdamW steps of the check model, against its CPU
twin: the same model, weights and batches in float32 on the CPU.

Every path loads the same folders (models.py) and takes the same batches;
the losses of each step must agree within the path's relative tolerance.
On ``--device cpu`` the path runs on the CPU as well (bf16 and fp16
autocast exist there), so the plumbing is exercised where no GPU is.
"""
import importlib
import math
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from benchmark_parts.batches import Sample, mmllava_batch
from benchmark_parts.generation import mmllava_generate
from benchmark_parts.sizes import Sizes

from gpu_check_parts.data import prompts
from gpu_check_parts.models import Folders, build_check_model, check_config
from gpu_check_parts.report import FAIL, PASS, Row, skipped

#: Largest relative loss difference from the CPU float32 twin, per step.
#: On the CPU's emulation at the GPU run's check size, bf16 rounding stayed
#: at 1.4e-3 and fp16's at 6.4e-4 over 4 steps (about 7 times below these),
#: while the breakages tried moved the widened head's loss by 3.6% (packed
#: samples attending to each other) to 8% (image features lost); see
#: docs/gpu_check.md.
TOLERANCES = dict(fp32=1e-4, bf16=1e-2, fp16=5e-3)
#: QLoRA's adapters: rank 8, no dropout (a random mask would differ between
#: the two devices); every linear layer of the LLM but its head.
LORA = dict(r=8, alpha=16, dropout=0.0)
LR = 1e-4
#: The fp16 path's GradScaler: 2**18 overflows the check model's first
#: gradients (the std-1 head makes them large), the back-off lands on 2**10,
#: which does not, and each good step doubles it again.
FP16_SCALER = dict(init_scale=2.0**18, backoff_factor=2.0**-8,
                   growth_interval=1)


@dataclass
class Context:
    """What every check shares."""

    sizes: Sizes
    folders: Folders
    device: str
    seed: int
    batches: list[list[Sample]]
    log: Callable[[str], None]
    twin_losses: Optional[list[float]] = None

    def build(self, device: Optional[str] = None, **kwargs):
        return build_check_model(
            check_config(self.sizes, self.folders, **kwargs),
            device or self.device, self.seed)

    def twin(self) -> list[float]:
        """The CPU float32 twin's losses (unpacked, no LoRA), once."""
        if self.twin_losses is None:
            self.twin_losses, _ = train_losses(self.build('cpu'),
                                               self.batches, 'cpu')
            self.log(f'CPU twin: {len(self.batches)} steps, losses '
                     + ', '.join(f'{x:.4f}' for x in self.twin_losses))
        return self.twin_losses


def autocast(device: str, dtype: Optional[torch.dtype]):
    return torch.autocast(torch.device(device).type, dtype=dtype,
                          enabled=dtype is not None)


def train_losses(model, batches: list[list[Sample]], device: str,
                 dtype: Optional[torch.dtype] = None,
                 scaler: Optional[torch.amp.GradScaler] = None,
                 skip: Optional[list[bool]] = None, step: Callable = None
                 ) -> tuple[list[float], list[bool]]:
    """AdamW steps, one a batch: the loss of each and whether its update
    was skipped (by ``scaler`` after an overflow, or where ``skip`` says,
    to follow a scaled run). ``step`` replaces backward and update (the
    DeepSpeed engine's)."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LR) \
        if step is None else None
    losses, skipped_steps = [], []
    for index, samples in enumerate(batches):
        with autocast(device, dtype):
            loss = model(**mmllava_batch(model, samples), mode='loss')['loss']
        if step is not None:
            step(loss)
            skip_this = False
        elif scaler is not None:
            scale = scaler.get_scale()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            skip_this = scaler.get_scale() < scale
        else:
            loss.backward()
            skip_this = bool(skip and skip[index])
            if not skip_this:
                optimizer.step()
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        skipped_steps.append(skip_this)
    return losses, skipped_steps


def relative_difference(losses: list[float], reference: list[float]) -> float:
    """Largest ``|a - b| / |b|`` over the steps (inf if any is not
    finite)."""
    if not all(math.isfinite(x) for x in losses):
        return math.inf
    return max(abs(a - b) / abs(b) for a, b in zip(losses, reference))


def loss_row(losses: list[float], reference: list[float], precision: str,
             note: str = '', **detail) -> Row:
    """A check's row (named by :func:`run_check`): pass when every step's
    loss is within the precision's tolerance of the twin's."""
    tolerance = TOLERANCES[precision]
    difference = relative_difference(losses, reference)
    return Row(
        '', PASS if difference <= tolerance else FAIL,
        f'max rel. loss diff {difference:.1e} over {len(losses)} steps'
        + (f'; {note}' if note else ''),
        f'<= {tolerance:g} ({precision} vs CPU fp32)',
        detail=dict(losses=losses, twin_losses=reference,
                    max_relative_difference=difference, **detail))


def unavailable(device: str, package: Optional[str] = None,
                cuda: bool = True) -> str:
    """Why a path cannot run here ('' when it can)."""
    reasons = []
    if package is not None:
        try:
            importlib.import_module(package)
        except Exception as error:  # an import that fails in any way
            reasons.append(f'{package} does not import '
                           f'({type(error).__name__}: {error})')
    if cuda and not device.startswith('cuda'):
        reasons.append(f'needs a CUDA device (this run: {device})')
    return '; '.join(reasons)


# ---------------------------------------------------------------------------
# The paths.
# ---------------------------------------------------------------------------
def bf16_amp(context: Context) -> Row:
    """fp32 weights, bf16 autocast."""
    losses, _ = train_losses(context.build(), context.batches,
                             context.device, torch.bfloat16)
    return loss_row(losses, context.twin(), 'bf16')


def fp16_loss_scaling(context: Context) -> Row:
    """fp16 autocast and torch's GradScaler, started at :data:`FP16_SCALER`
    (an overflow and a skipped update first, then updates at a scale that
    doubles after each). The twin skips the updates the scaler skipped, so
    both take the same steps; at least one update must be taken."""
    device = context.device
    scaler = torch.amp.GradScaler(torch.device(device).type, **FP16_SCALER)
    losses, skipped_steps = train_losses(
        context.build(), context.batches, device, torch.float16, scaler)
    twin = context.twin() if not any(skipped_steps) else train_losses(
        context.build('cpu'), context.batches, 'cpu', skip=skipped_steps)[0]
    row = loss_row(losses, twin, 'fp16',
                   f'{sum(skipped_steps)} of {len(losses)} updates skipped '
                   f'by the scaler, final scale {scaler.get_scale():g}',
                   skipped_steps=skipped_steps)
    if all(skipped_steps):
        row.status, row.reason = FAIL, 'every update was skipped'
    return row


def packed(context: Context, attention: str) -> Row:
    """Packing on, bf16 autocast, against the unpacked twin."""
    model = context.build(packing=True, attn_implementation=attention)
    used = model.llm.config._attn_implementation
    losses, _ = train_losses(model, context.batches, context.device,
                             torch.bfloat16)
    return loss_row(losses, context.twin(), 'bf16',
                    f'attention {used!r}, rows of '
                    f'{context.sizes.packing_max_length}, against unpacked',
                    attention=used)


def packed_sdpa(context: Context) -> Row:
    return packed(context, 'sdpa')


def packed_flash(context: Context) -> Row:
    return packed(context, 'flash_attention_2')


def qlora(context: Context) -> Row:
    """The LLM in 4 bits (NF4) through bitsandbytes, LoRA adapters and the
    projector training, bf16 compute. The twin holds the dequantized 4-bit
    weights in float32 and the same adapters, so the two differ only in
    arithmetic, as the other paths do."""
    from peft.tuners.lora import LoraLayer
    from peft.utils.integrations import dequantize_module_weight
    device = torch.device(context.device)
    index = device.index if device.index is not None else \
        torch.cuda.current_device()
    model = context.build(lora=LORA, quantization='4bit',
                          torch_dtype='bfloat16',
                          device_map={'': f'cuda:{index}'})
    twin = context.build('cpu', lora=LORA)
    quantized = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer):
                base = module.get_base_layer()
                target = twin.get_submodule(name).get_base_layer()
                target.weight.copy_(
                    dequantize_module_weight(base).float().cpu())
                quantized += base.weight.dtype == torch.uint8
        adapters = {key: value for key, value in twin.state_dict().items()
                    if 'lora_' in key}
        model.load_state_dict(adapters, strict=False)
    losses, _ = train_losses(model, context.batches, context.device,
                             torch.bfloat16)
    twin_losses, _ = train_losses(twin, context.batches, 'cpu')
    return loss_row(losses, twin_losses, 'bf16',
                    f'{quantized} linear layers in 4 bits; twin: their '
                    'dequantized weights', quantized_layers=quantized)


def batched_generation(context: Context) -> Row:
    """Greedy answers of ``prompts`` (float32) at batch 8 and batch 1 on
    the device, and at batch 1 on the CPU twin: all equal."""
    questions = prompts(context.sizes, 8, context.seed + 1)
    new_tokens = context.sizes.new_tokens
    model = context.build().eval()
    alone = [answer for prompt in questions
             for answer in mmllava_generate(model, [prompt], new_tokens)]
    together = mmllava_generate(model, questions, new_tokens)
    twin = [answer for prompt in questions
            for answer in mmllava_generate(context.build('cpu').eval(),
                                           [prompt], new_tokens)]
    same_batch = sum(a == b for a, b in zip(together, alone))
    same_twin = sum(a == b for a, b in zip(alone, twin))
    count = len(questions)
    return Row('', PASS if same_batch == same_twin == count else FAIL,
               f'batch 8 = batch 1: {same_batch}/{count}; = CPU twin: '
               f'{same_twin}/{count} ({new_tokens} greedy tokens, fp32)',
               'all answers equal',
               detail=dict(batch_1=alone, batch_8=together, twin=twin))


def run_check(name: str, check: Callable[[Context], Row], context: Context,
              requirement: str = '') -> Row:
    """``check``'s row; skipped with ``requirement`` when that says what is
    missing, failed with the error when it raises (the other paths still
    run)."""
    if requirement:
        context.log(f'{name}: skipped ({requirement})')
        return skipped(name, requirement)
    context.log(f'{name}: running on {context.device}')
    try:
        row = check(context)
    except Exception as error:  # one broken path must not hide the others
        traceback.print_exc()
        row = Row(name, FAIL, reason=f'{type(error).__name__}: {error}'[:300])
    row.name = name
    if context.device.startswith('cuda'):
        torch.cuda.empty_cache()
    context.log(f'{name}: {row.status_cell}; {row.value}')
    return row
