"""Each CUDA path of mmllava against its CPU twin, then a 7B-width stage-2
step and generation beside transformers' Llava: one command for one GPU.

    python tools/analysis/gpu_check.py --out gpu_check.json      # on one GPU
    python tools/analysis/gpu_check.py --device cpu --tiny --out X.json

Checks: a small random LLaVA-1.5 takes a few AdamW steps on --device in each
path (bf16 AMP; fp16 with loss scaling; packed sequences through the
project's SDPA and through flash-attn varlen; QLoRA in 4 bits through
bitsandbytes; ZeRO-3 built partitioned, in one process) and every step's
loss must be within the path's stated relative tolerance of its CPU twin's
(the same weights and batches in float32 on the CPU); greedy answers at
batch 8 must equal those at batch 1. A path whose package or device is
missing is reported 'skipped: <why>'.

Speed: LLaMA-7B's width (4096, 32 heads, FFN 11008) with as many layers as
fit, CLIP ViT-L/14-336, random weights in bf16, packing on, gradient
checkpointing off and on: tokens/s and MFU (against the bf16 GEMM peak
timed in the same run) beside transformers' Llava on the same tensors and
samples; greedy generation's new tokens/s at batch 1 and 8 beside
transformers'. Targets: MFU >= 45%, >= 1.3x transformers' tokens/s.

Prints one table and saves json (--out). Exits 1 when a check fails;
skipped checks and missed targets do not fail. See docs/gpu_check.md.
"""
import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace

PARTS = ('checks', 'speed')


def parse_parts(value: str) -> list[str]:
    parts = [part.strip() for part in value.split(',') if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f'choose from {", ".join(PARTS)} (got {value!r})')
    return parts


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog='\n\n'.join(__doc__.split('\n\n')[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda',
                        help='where the paths run (default: cuda); their '
                        'twins always run on the CPU')
    parser.add_argument('--tiny', action='store_true',
                        help='tiny sizes (the CPU test): every row, the speed '
                        'figures meaningless')
    parser.add_argument('--out', help='save the rows and figures as json')
    parser.add_argument('--parts', type=parse_parts,
                        default=list(PARTS),
                        help='comma-separated, of checks,speed (default: '
                        'both)')
    parser.add_argument('--layers', type=int,
                        help="the speed model's LLM layers (default: as many "
                        'as fit the GPU, at most 32)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int,
                        help="torch's CPU threads (default: 1 with --tiny on "
                        "the CPU, where tiny tensors run faster on one; "
                        "else torch's choice)")
    parser.add_argument('--work-dir', help='where the check model is written '
                        '(default: a temporary folder)')
    return parser.parse_args(argv)


def quiet() -> None:
    """The tool's own lines only: no build logs, weight-loading bars or
    DeepSpeed notices between them (errors still show)."""
    import logging
    import warnings

    from mmengine.logging import MMLogger
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # print_log(logger='current') writes to the newest MMLogger (its
    # warnings here: answers cut at the token budget, as asked).
    MMLogger.get_instance('gpu_check', log_level='ERROR')
    logging.getLogger('DeepSpeed').setLevel(logging.WARNING)
    warnings.filterwarnings('ignore', category=FutureWarning)


class StrictFloat32:
    """No TF32 in the checks: float32 on the GPU means float32, as on the
    twin (cuDNN's convolutions, the patch embedding, default to TF32)."""

    def __enter__(self):
        import torch
        self.saved = (torch.backends.cuda.matmul.allow_tf32,
                      torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc):
        import torch
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = self.saved


def check_list(device: str) -> list:
    """``(name, check, what is missing)`` of every path, in running order
    (ZeRO-3 last: DeepSpeed, once imported and initialised, stays in the
    process)."""
    from gpu_check_parts.checks import (batched_generation, bf16_amp,
                                        fp16_loss_scaling, packed_flash,
                                        packed_sdpa, qlora, unavailable)
    from gpu_check_parts.zero3 import zero3
    return [
        ('bf16 AMP training steps', bf16_amp, ''),
        ('fp16 AMP with loss scaling', fp16_loss_scaling, ''),
        ("packed sequences, the project's SDPA", packed_sdpa, ''),
        ('packed sequences, flash-attn varlen', packed_flash,
         unavailable(device, 'flash_attn')),
        ('QLoRA, 4-bit bitsandbytes', qlora,
         unavailable(device, 'bitsandbytes')),
        ('batched generation (batch 8 = batch 1)', batched_generation, ''),
        ('ZeRO-3 partitioned build, one process', zero3,
         unavailable(device, 'deepspeed', cuda=False)),
    ]


def run_checks(args, plan, work_dir: str, log) -> list:
    from gpu_check_parts.checks import Context, run_check
    from gpu_check_parts.data import random_samples, steps_of
    from gpu_check_parts.models import write_check_model
    folders = write_check_model(plan.check, work_dir, args.seed)
    samples = random_samples(plan.check, plan.check.num_samples,
                             args.seed + 1)
    context = Context(plan.check, folders, args.device, args.seed,
                      steps_of(samples, plan.check.batch_size), log)
    log(f'check model written ({plan.check.llm["num_hidden_layers"]} x '
        f'{plan.check.llm["hidden_size"]} Llama, '
        f'{plan.check.num_image_tokens} image tokens); '
        f'{len(context.batches)} steps of {plan.check.batch_size} samples '
        'per path')
    with StrictFloat32():
        return [run_check(name, check, context, missing)
                for name, check, missing in check_list(args.device)]


def run_speed(args, plan, work_dir: str, log) -> tuple[list, dict]:
    from gpu_check_parts.speed import failed_speed, measure, speed_rows
    from mmllava.testing.demo.tokenizer import write_llama_tokenizer
    tokenizer_dir = write_llama_tokenizer(os.path.join(work_dir,
                                                       'tokenizer'))
    try:
        result = measure(plan, tokenizer_dir, args.device, args.seed, log)
    except Exception as error:  # the checks' rows still print
        import traceback
        traceback.print_exc()
        return failed_speed(error), {}
    judge = args.device.startswith('cuda') and not args.tiny
    return speed_rows(result, judge), result


def setup_facts(args, plan, seconds: float) -> dict:
    import torch
    import transformers
    device = args.device
    return dict(
        device=device, device_name=torch.cuda.get_device_name(device)
        if device.startswith('cuda') else 'cpu', tiny=args.tiny,
        parts=args.parts, seed=args.seed, threads=torch.get_num_threads(),
        torch=torch.__version__, transformers=transformers.__version__,
        plan=plan.to_dict(), seconds=seconds)


def main() -> None:
    args = parse_args()
    started = time.time()
    if not args.device.startswith('cuda'):
        # DeepSpeed (imported by the converters) picks its accelerator on
        # import.
        os.environ.setdefault('DS_ACCELERATOR', 'cpu')
    import torch
    quiet()
    from mmllava.converters.cli import progress_logger
    from mmllava.setup_env import register_all_modules

    from benchmark_parts.report import save
    from gpu_check_parts.report import format_table, failed
    from gpu_check_parts.sizes import get_plan, with_layers
    from gpu_check_parts.speed import describe
    register_all_modules()
    threads = args.threads or (1 if args.tiny and args.device == 'cpu'
                               else None)
    if threads:
        torch.set_num_threads(threads)
    log = progress_logger()
    plan = get_plan(args.tiny)
    if args.layers:
        plan = replace(plan, speed=with_layers(plan.speed, args.layers),
                       attempt_fit=False)
    log(f'gpu_check on {args.device}{" (tiny)" if args.tiny else ""}: '
        f'{", ".join(args.parts)}')
    rows, speed = [], {}
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = args.work_dir or temporary
        if 'checks' in args.parts:
            rows += run_checks(args, plan, work_dir, log)
        if 'speed' in args.parts:
            speed_rows, speed = run_speed(args, plan, work_dir, log)
            rows += speed_rows
    print(format_table(rows))
    if speed:
        print(describe(speed))
    counts = {status: sum(row.status == status for row in rows
                          if row.kind == 'check')
              for status in ('pass', 'fail', 'skipped')}
    print('checks: ' + ' / '.join(f'{count} {status}'
                                  for status, count in counts.items()))
    seconds = time.time() - started
    print(f'took {seconds:.0f} s')
    if args.out:
        save(args.out, dict(setup=setup_facts(args, plan, seconds),
                            rows=[row.to_dict() for row in rows],
                            speed=speed))
    if failed(rows):
        sys.exit(f'Checks failed: {", ".join(failed(rows))}')


if __name__ == '__main__':
    main()
