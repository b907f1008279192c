"""Peak memory of the checkpoint converters on a random ~1B-parameter LLaVA.

    python tools/analysis/convert_memory.py WORK_DIR [--shard-size 400MB]

Writes a random LLaVA (CLIP ViT-B/16-sized tower, mlp2x_gelu, a 16-layer
2048-wide Llama; float16, about 1.03B parameters, 2 GB) to WORK_DIR as a
llava-hf folder in shards, without ever holding it whole; then runs each
conversion tool in its own process and reports that process's peak RSS
(``resource.getrusage``) beside the largest input shard and the total size.
A conversion that went shard by shard peaks near the interpreter's own
footprint plus a shard or two, not near the model size. Needs about 3x the
model size on disk.

Linux carries ``ru_maxrss`` across ``exec``, so a child would report its
parent's peak: this process imports no torch and writes the model in a
child of its own, and each child also reports ``VmHWM`` (its own address
space's peak) from /proc.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools/model_converters'

VISION = dict(model_type='clip_vision_model', hidden_size=768,
              intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, image_size=224, patch_size=16)
LLM = dict(model_type='llama', hidden_size=2048, intermediate_size=5504,
           num_hidden_layers=16, num_attention_heads=16,
           num_key_value_heads=16, vocab_size=32000,
           max_position_embeddings=2048, bos_token_id=1, eos_token_id=2)


def llava_hf_shapes() -> dict[str, tuple]:
    """Every tensor of the model in llava-hf keys, with its shape."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, \
        LlamaConfig, LlamaForCausalLM
    shapes = {}
    for prefix, model_class, config_class, config in (
            ('vision_tower.vision_model.', CLIPVisionModel, CLIPVisionConfig,
             VISION),
            ('language_model.', LlamaForCausalLM, LlamaConfig, LLM)):
        kwargs = {k: v for k, v in config.items() if k != 'model_type'}
        with torch.device('meta'):
            model = model_class(config_class(**kwargs))
        shapes.update({prefix + key: tuple(value.shape)
                       for key, value in model.state_dict().items()})
    width = LLM['hidden_size']
    shapes.update({
        'multi_modal_projector.linear_1.weight': (width,
                                                  VISION['hidden_size']),
        'multi_modal_projector.linear_1.bias': (width, ),
        'multi_modal_projector.linear_2.weight': (width, width),
        'multi_modal_projector.linear_2.bias': (width, )})
    return shapes


def write_random_llava_hf(folder: Path, shard_size: str) -> None:
    """A random llava-hf folder, written shard by shard."""
    import torch
    from transformers import LlavaConfig
    from mmllava.converters.shards import ShardWriter
    from mmllava.testing.demo.tokenizer import write_llama_tokenizer
    writer = ShardWriter(str(folder), shard_size)
    generator = torch.Generator().manual_seed(0)
    for key, shape in llava_hf_shapes().items():
        writer.add(key, (torch.randn(*shape, generator=generator) *
                         0.02).half())
    writer.close()
    write_llama_tokenizer(str(folder))
    LlavaConfig(vision_config=VISION, text_config=LLM,
                image_token_index=31999, vision_feature_layer=-2,
                vision_feature_select_strategy='default',
                image_seq_length=196, dtype='float16').save_pretrained(folder)


def folder_sizes(folder: Path) -> tuple[int, int, int]:
    """(number of shards, largest shard, total) in bytes."""
    sizes = [path.stat().st_size for path in folder.glob('*.safetensors')]
    return len(sizes), max(sizes), sum(sizes)


REPORT = ('import re, resource; '
          'hwm = re.search(r"VmHWM:\\s+(\\d+)", '
          'open("/proc/self/status").read()); '
          'print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF)'
          '.ru_maxrss, hwm.group(1) if hwm else -1)')


def peak_rss(args: list[str]) -> tuple[int, int, float]:
    """Run a tool in a fresh process: its peak RSS by getrusage and by
    VmHWM, in bytes, and the seconds it took."""
    code = ('import runpy, sys; sys.argv = sys.argv[1:]; '
            'runpy.run_path(sys.argv[0], run_name="__main__"); ' + REPORT)
    start = time.time()
    result = subprocess.run([sys.executable, '-c', code, *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'{args[0]} failed:\n{result.stderr[-2000:]}')
    line = [line for line in result.stdout.splitlines()
            if line.startswith('PEAK_KB')][-1]
    maxrss, hwm = (int(value) * 1024 for value in line.split()[1:])
    return maxrss, hwm, time.time() - start


def baseline_rss() -> tuple[int, int]:
    """Peak RSS of a process that only imports what the tools import."""
    code = ('import torch, transformers, mmllava.converters, '
            'mmllava.apis; ' + REPORT)
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True, text=True, check=True)
    maxrss, hwm = (int(value) * 1024
                   for value in result.stdout.split()[-2:])
    return maxrss, hwm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--shard-size', default='400MB')
    parser.add_argument('--write-only', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(args.work_dir)
    hf_dir = root / 'llava_hf'
    if args.write_only:
        write_random_llava_hf(hf_dir, args.shard_size)
        return
    if not (hf_dir / 'model.safetensors.index.json').is_file():
        start = time.time()
        # In a child: this process stays small (see the module docstring).
        subprocess.run([sys.executable, __file__, str(root), '--shard-size',
                        args.shard_size, '--write-only'], check=True)
        print(f'wrote the random model in {time.time() - start:.0f} s',
              flush=True)
    count, largest, total = folder_sizes(hf_dir)
    print(f'model: {count} shards, largest {largest / 1e6:.0f} MB, total '
          f'{total / 1e6:.0f} MB (float16: {total / 2e9:.3f}B parameters)')
    base_maxrss, base = baseline_rss()
    print(f'imports alone: peak RSS {base / 1e6:.0f} MB (getrusage '
          f'{base_maxrss / 1e6:.0f} MB)')
    mm_dir, hf_again, official = (root / 'mmllava', root / 'hf_again',
                                  root / 'official')
    runs = [
        ('hf_to_mmllava', [str(TOOLS / 'hf_to_mmllava.py'), str(hf_dir),
                           str(mm_dir), '--max-shard-size',
                           args.shard_size]),
        ('mmllava_to_hf', [str(TOOLS / 'mmllava_to_hf.py'),
                           str(mm_dir / 'llava_config.py'), str(hf_again),
                           '--max-shard-size', args.shard_size]),
        ('mmllava_to_official', [str(TOOLS / 'mmllava_to_official.py'),
                                 str(mm_dir / 'llava_config.py'),
                                 str(official), '--max-shard-size',
                                 args.shard_size]),
    ]
    rows = []
    for name, tool_args in runs:
        maxrss, rss, seconds = peak_rss(tool_args)
        rows.append((name, rss, seconds))
        print(f'{name}: peak RSS {rss / 1e6:.0f} MB (getrusage '
              f'{maxrss / 1e6:.0f} MB) in {seconds:.0f} s', flush=True)
    print()
    print(f'| conversion | peak RSS | peak RSS - imports | / largest shard '
          f'({largest / 1e6:.0f} MB) | / total ({total / 1e6:.0f} MB) |')
    print('|---|---|---|---|---|')
    for name, rss, _ in rows:
        print(f'| {name} | {rss / 1e6:.0f} MB | {(rss - base) / 1e6:.0f} MB '
              f'| {(rss - base) / largest:.2f} | {rss / total:.2f} |')
    (root / 'convert_memory.json').write_text(json.dumps(dict(
        shards=count, largest_shard=largest,
        total=total, imports_rss=base,
        runs={name: dict(peak_rss=rss, seconds=seconds)
              for name, rss, seconds in rows}), indent=2))


if __name__ == '__main__':
    main()
