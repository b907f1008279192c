"""mmllava against transformers' LlavaForConditionalGeneration, side by side.

    python tools/analysis/benchmark.py [--quick] [--device cuda] [--out F]
        [--parts training,generation,data,anyres,serving]

Builds one random LLaVA (a CLIP ViT 6 x 384 at 224 px / 14, 256 image
tokens; a Llama 8 x 512, vocabulary 32001; about 70M parameters) twice, in
mmllava and in transformers, with the same weights, and checks that their
logits agree before timing anything. On a seeded LLaVA-like training set
written to disk (captions, conversations, text-only samples; real photos and
the real LLaMA tokenizer) it measures, in this one run:

- training (AdamW, the same samples per step and steps per epoch for every
  setting, epochs interleaved): samples/s, supervised tokens/s, padding,
  peak memory (each setting in a fresh process), final loss, MFU; mmllava's
  best setting and its random and length-grouped batches against the
  baseline with random batches and at its best (modality length grouping);
  the losses of settings fed the same batches must agree;
- greedy generation: new tokens/s at batch 1 and 8, answers equal; mmllava
  as it is and on torch's own kernels (no oneDNN-packed weights);
- the data path, json record to collated batch, against the official
  preprocessing written per sample, on one thread: bit for bit equal
  outputs, and with torch's resize (pixels one level off in ~0.2% of the
  values: the largest difference and that fraction are reported);
- AnyRes against pad at the same base resolution (LLaVA-NeXT's grids at the
  tower's size, spatial_unpad): image tokens, tiles and LLM positions, data
  path and training samples/s of one model on the image conversations;
- serving (only when asked, ``--parts serving``): 32 concurrent clients on
  the demo recipe, static batches against continuous batching, the same
  jobs and arrivals: time to first token, latency, tokens/s, and greedy
  answers equal to each request generated alone.

See docs/benchmark.md for what each figure means.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmark_parts.training import Setting

#: mmllava's best setting (packed) and the unpacked ones that show where its
#: gain comes from; the baseline at random batches and at its best.
BEST, UNPACKED = 'mmllava_packed', ['mmllava_grouped', 'mmllava_random']
#: Settings fed the same batches: their losses must agree.
SAME_BATCHES = (('mmllava_packed', 'baseline_random'),
                ('mmllava_random', 'baseline_random'),
                ('mmllava_grouped', 'baseline_best'))
#: Where fp32 results of the two implementations count as equal.
LOGITS_ATOL, LOSS_ATOL = 1e-3, 1e-3
#: Memory is measured for the table's three columns.
MEMORY_SETTINGS = (BEST, 'baseline_random', 'baseline_best')


#: What the benchmark can measure; ``--parts`` picks some.
PARTS = ('training', 'generation', 'data', 'anyres', 'serving')
#: What it measures unless told.
DEFAULT_PARTS = ('training', 'generation', 'data', 'anyres')
REPO = Path(__file__).resolve().parents[2]


def parse_parts(value: str) -> list[str]:
    parts = [part.strip() for part in value.split(',') if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f'unknown parts {unknown} (choose from {", ".join(PARTS)})'
            if unknown else 'no part given')
    return parts


def training_settings(packing_max_length: int) -> list['Setting']:
    from benchmark_parts.training import Setting
    return [
        Setting(BEST, 'mmllava', 'random', packing_max_length),
        Setting('mmllava_grouped', 'mmllava', 'grouped'),
        Setting('mmllava_random', 'mmllava', 'random'),
        Setting('baseline_random', 'baseline', 'random'),
        # The official trainer's group_by_modality_length.
        Setting('baseline_best', 'baseline', 'grouped'),
    ]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes, a few steps (a smoke run)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--work-dir', help='where the data, weights and '
                        'inputs of the measuring processes go (default: a '
                        'temporary folder)')
    parser.add_argument('--out', help='save the results as json')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-samples', type=int,
                        help='training samples per epoch')
    parser.add_argument('--epochs', type=int)
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--threads', type=int,
                        help="torch threads (default: torch's choice)")
    parser.add_argument('--serving-clients', type=int, default=32)
    parser.add_argument('--serving-batch-size', type=int, default=32,
                        help='most rows per batch, for both schedulers')
    parser.add_argument('--serving-arrival-gap-ms', type=float, default=50,
                        help='client i starts i times this after the first')
    parser.add_argument('--parts', default=','.join(DEFAULT_PARTS),
                        type=parse_parts,
                        help=f'comma-separated parts to run, of '
                        f'{",".join(PARTS)} (default: all)')
    return parser.parse_args()


STARTED = time.time()


def log(message: str) -> None:
    print(f'[{time.time() - STARTED:4.0f} s] {message}', flush=True)


def check_logits(mmllava_model, baseline_model, samples, sizes,
                 device) -> float:
    """Largest logit difference on the shortest image sample and the
    shortest text-only one (every real position)."""
    import torch

    from benchmark_parts.batches import baseline_batch, mmllava_batch
    picked = [min((s for s in samples if bool(s.num_images) == image),
                  key=lambda s: len(s.input_ids), default=None)
              for image in (True, False)]
    picked = [s for s in picked if s is not None]
    with torch.no_grad():
        batch = mmllava_batch(mmllava_model, picked)
        ours = mmllava_model(**batch, mode='tensor')
        inputs = baseline_batch(picked, sizes.num_image_tokens, device)
        inputs.pop('labels')
        theirs = baseline_model(**inputs).logits
    real = inputs['attention_mask'].bool()
    return float((ours[real] - theirs[real]).abs().max())


def loss_checks(train: dict) -> dict:
    checks = {}
    for ours, theirs in SAME_BATCHES:
        steps = [abs(a - b) for epoch_a, epoch_b in zip(
            train[ours]['step_losses'], train[theirs]['step_losses'])
                 for a, b in zip(epoch_a, epoch_b)]
        checks[f'{ours} vs {theirs}'] = dict(
            max_step_difference=max(steps),
            final_loss=[train[ours]['final_loss'],
                        train[theirs]['final_loss']],
            equal=max(steps) <= LOSS_ATOL)
    return checks


def measure_training(args, sizes, work_dir, tokenizer_dir, samples,
                     weights) -> tuple[dict, dict]:
    """Logits check, interleaved training, memory, MFU."""
    from benchmark_parts.flops import epoch_flops, gemm_peak
    from benchmark_parts.memory import peak_memories, write_inputs
    from benchmark_parts.training import (build_run, summarize,
                                          train_interleaved)
    settings = training_settings(sizes.packing_max_length)
    write_inputs(work_dir, sizes, tokenizer_dir, args.seed, settings,
                 args.device, samples)
    runs = [build_run(setting, sizes, tokenizer_dir, weights, args.device)
            for setting in settings]
    by_name = {run.setting.name: run for run in runs}
    difference = check_logits(
        by_name['mmllava_random'].model, by_name['baseline_random'].model,
        samples, sizes, args.device)
    if difference > LOGITS_ATOL:
        sys.exit(f'The two models disagree (logits differ by up to '
                 f'{difference:.2e}): the comparison would be void.')
    log(f'logits agree (largest difference {difference:.1e})')
    peak = gemm_peak(sizes.gemm_size, args.device)
    train_interleaved(runs, samples, sizes, args.seed, args.device, log)
    peak = max(peak, gemm_peak(sizes.gemm_size, args.device))
    flops = epoch_flops(samples, sizes) * sizes.epochs
    train = {run.setting.name: summarize(run) for run in runs}
    for result in train.values():
        result['mfu_percent'] = 100 * flops / result['seconds'] / peak
    del runs, by_name
    for name, peak_bytes in peak_memories(work_dir,
                                          list(MEMORY_SETTINGS)).items():
        train[name]['peak_memory_mb'] = peak_bytes / 1e6
        log(f'{name}: peak memory {peak_bytes / 1e6:.0f} MB')
    facts = dict(gemm_peak_flops=peak, epoch_flops=flops / sizes.epochs,
                 logits=dict(max_difference=difference, atol=LOGITS_ATOL,
                             equal=True),
                 losses=loss_checks(train))
    return train, facts


def measure_generation(args, sizes, tokenizer_dir, tokenizer, datasets,
                       samples, weights) -> tuple[list[dict], dict, dict]:
    """Greedy generation at batch 1 and 8, answers compared."""
    from benchmark_parts.generation import (benchmark_generation,
                                            prompt_samples)
    from benchmark_parts.models import (build_baseline, build_mmllava,
                                        widen_lm_head)
    from benchmark_parts.report import row
    records = [dataset.get_data_info(index) for dataset in datasets
               for index in range(len(dataset))]
    generator = build_mmllava(sizes, tokenizer_dir, weights)
    widen_lm_head(generator, args.seed)
    widened = generator.state_dict()
    on_torch_kernels = build_mmllava(sizes, tokenizer_dir, widened)
    generator_baseline = build_baseline(sizes, widened)
    generation = benchmark_generation(
        generator.to(args.device).eval(),
        on_torch_kernels.to(args.device).eval(),
        generator_baseline.to(args.device).eval(),
        prompt_samples(records, samples, tokenizer, 8), sizes, tokenizer,
        args.device)
    log('generation measured')
    rounds = generation['rounds']
    rows = [
        row(f'generate new tokens/s, batch {size}{label}, {statistic} of '
            f'{rounds} round{"s" if rounds > 1 else ""}',
            rates[f'{side}_batch{size}'], None,
            rates[f'baseline_batch{size}'])
        for side, label in (('mmllava', ''),
                            ('mmllava_torch_kernels', ', torch kernels'))
        for size in (1, 8)
        for statistic, rates in (
            ('median', generation['tokens_per_s']),
            ('lowest', generation['lowest_tokens_per_s']))
    ]
    return rows, dict(equal=generation['outputs_equal']), generation


def measure_data_path(sizes, tokenizer, paths,
                      datasets) -> tuple[list[dict], dict]:
    """Json record to collated batch, against the official preprocessing:
    the bit-exact pipeline, and the one resizing with torch."""
    from benchmark_parts.batches import build_datasets
    from benchmark_parts.data_path import (benchmark_data_path,
                                           official_datasets, outputs_agree,
                                           pixel_levels_apart)
    from benchmark_parts.report import row
    official = official_datasets(sizes, tokenizer, paths)
    agreement = outputs_agree(datasets, official)
    torch_resized = build_datasets(sizes, tokenizer, paths, 'torch')
    apart = pixel_levels_apart(torch_resized, official,
                               sizes.image_processor['image_std'])
    data_path = benchmark_data_path(
        sizes, dict(exact=datasets, torch_resize=torch_resized), official,
        tokenizer)
    log('data path measured')
    rows = [row('data path samples/s', data_path['exact'], None,
                data_path['official']),
            row('data path samples/s, torch resize',
                data_path['torch_resize'], None, data_path['official'])]
    # The torch path must keep every id and label, and every value within
    # one uint8 level.
    equal = agreement['equal'] == agreement['records'] and \
        apart['ids_equal'] and apart['max_levels'] <= 1
    return rows, dict(agreement, equal=equal, torch_resize=apart)


def measure_serving(args, work_dir: str) -> dict:
    from benchmark_parts.serving import benchmark_serving, build_served_model
    serving_dir = Path(work_dir, 'serving')
    serving_dir.mkdir(parents=True, exist_ok=True)
    model = build_served_model(str(serving_dir), str(REPO), args.device)
    log('serving: static and continuous batching, same jobs')
    return benchmark_serving(
        model, str(serving_dir), num_clients=args.serving_clients,
        max_batch_size=args.serving_batch_size,
        arrival_gap_s=args.serving_arrival_gap_ms / 1000)


def serving_only(args) -> None:
    """``--parts serving``: no training data or reference model needed."""
    from benchmark_parts.report import save
    from benchmark_parts.serving import format_serving_table
    with tempfile.TemporaryDirectory() as temporary:
        result = measure_serving(args, args.work_dir or temporary)
    print(format_serving_table(result))
    if args.out:
        save(args.out, dict(serving=result))
    if not result['equal']:
        sys.exit('Checks failed: serving (greedy answers differ)')


def main() -> None:
    args = parse_args()
    # torch, transformers and the parts (which import mmllava's models) take
    # seconds to import: here and in the functions main calls, once the
    # arguments are parsed, so that --help answers at once.
    import torch

    from mmllava.models.tokenizer import build_tokenizer
    from mmllava.testing.demo.tokenizer import write_llama_tokenizer

    from benchmark_parts.anyres_cost import (anyres_rows, benchmark_anyres,
                                             format_anyres_table)
    from benchmark_parts.batches import build_datasets, load_samples
    from benchmark_parts.memory import WEIGHTS_FILE
    from benchmark_parts.models import build_mmllava, save_weights
    from benchmark_parts.report import format_table, save, training_rows
    from benchmark_parts.serving import format_serving_table
    from benchmark_parts.sizes import get_sizes
    from benchmark_parts.synthetic_data import write_dataset
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.parts == ['serving']:
        return serving_only(args)
    sizes = get_sizes(args.quick, num_samples=args.num_samples,
                      epochs=args.epochs, batch_size=args.batch_size)
    temporary = None if args.work_dir else tempfile.TemporaryDirectory()
    work_dir = args.work_dir or temporary.name
    started = time.time()
    tokenizer_dir = write_llama_tokenizer(str(Path(work_dir, 'tokenizer')))
    tokenizer = build_tokenizer(dict(type='PretrainedTokenizer',
                                     pretrained=tokenizer_dir))
    paths = write_dataset(str(Path(work_dir, 'data')), sizes, tokenizer,
                          args.seed)
    datasets = build_datasets(sizes, tokenizer, paths)
    samples = load_samples(datasets)
    log('data written and tokenized')
    torch.manual_seed(args.seed)
    reference = build_mmllava(sizes, tokenizer_dir)
    weights = reference.state_dict()
    num_params = sum(p.numel() for p in reference.parameters())
    save_weights(reference, str(Path(work_dir, WEIGHTS_FILE)))
    log(f'{num_params / 1e6:.1f}M parameters, {len(samples)} samples, '
        f'{sizes.epochs} epochs of {len(samples) // sizes.batch_size} steps '
        f'(batch {sizes.batch_size}), {torch.get_num_threads()} threads, '
        f'{args.device}; parts: {", ".join(args.parts)}')

    rows, checks, facts = [], {}, {}
    results = dict(rows=rows, checks=checks)
    if 'training' in args.parts:
        train, facts = measure_training(args, sizes, work_dir, tokenizer_dir,
                                        samples, weights)
        rows += training_rows(train, BEST, UNPACKED)
        checks.update(logits=facts.pop('logits'), **facts.pop('losses'))
        results['training'] = train
    if 'generation' in args.parts:
        generation_rows, checks['generation'], results['generation'] = \
            measure_generation(args, sizes, tokenizer_dir, tokenizer,
                               datasets, samples, weights)
        rows += generation_rows
    if 'data' in args.parts:
        data_rows, checks['data_path'] = measure_data_path(
            sizes, tokenizer, paths, datasets)
        rows += data_rows
    if 'anyres' in args.parts:
        cost = benchmark_anyres(sizes, tokenizer, tokenizer_dir, paths,
                                weights, args.device)
        results['anyres'] = dict(cost, rows=anyres_rows(cost))
        log('AnyRes against pad measured')
    if 'serving' in args.parts:
        results['serving'] = measure_serving(args, work_dir)
        checks['serving'] = dict(equal=results['serving']['equal'])
    results['setup'] = dict(
        sizes=sizes.to_dict(), parameters=num_params, samples=len(samples),
        device=args.device, threads=torch.get_num_threads(), seed=args.seed,
        parts=args.parts, seconds=time.time() - started, **facts)
    if rows:
        print(format_table(rows))
    if 'anyres' in results:
        print(format_anyres_table(results['anyres']['rows']))
    if 'serving' in results:
        print(format_serving_table(results['serving']))
    failed = [name for name, check in checks.items() if not check['equal']]
    if checks:
        print('checks: ' + ', '.join(
            f'{name} {"FAILED" if name in failed else "ok"}'
            for name in checks))
    if 'data_path' in checks:
        apart = checks['data_path']['torch_resize']
        print(f'torch resize: pixels at most {apart["max_levels"]} uint8 '
              f'level(s) from the official ones, '
              f'{apart["fraction_differing"]:.2%} of the values differ')
    if 'gemm_peak_flops' in facts:
        print(f'GEMM peak {facts["gemm_peak_flops"] / 1e12:.3f} TFLOP/s')
    print(f'took {results["setup"]["seconds"]:.0f} s')
    if args.out:
        save(args.out, results)
    if temporary is not None:
        temporary.cleanup()
    if failed:
        sys.exit(f'Checks failed: {", ".join(failed)}')


if __name__ == '__main__':
    main()
