"""Weights for the embedded demo, made on this machine.

The demo needs no download: its vision tower is a small random-init CLIP saved
with ``save_pretrained``, and its LLM is a small random-init Llama that first
gets a short language pretraining on the generated demo text (a frozen random
LLM would leave stage 1 little to align to). Both are then loaded by the demo
configs through the real ``from_pretrained`` path, like real checkpoints.
"""
import math
import time
from pathlib import Path

import torch
from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                           TextColumn, TimeRemainingColumn)
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer,
                          CLIPImageProcessorPil, CLIPVisionConfig,
                          CLIPVisionModel)


def save_random_vision_encoder(vision_config: dict, image_processor: dict,
                               out_dir: str, seed: int = 0) -> str:
    """Save a random-init CLIP vision tower and its image processor.

    Args:
        vision_config (dict): ``CLIPVisionConfig`` kwargs.
        image_processor (dict): ``CLIPImageProcessor`` kwargs.
        out_dir (str): Folder to write.
        seed (int): Seed of the initialisation.
    """
    torch.manual_seed(seed)
    CLIPVisionModel(CLIPVisionConfig(**vision_config)).save_pretrained(out_dir)
    CLIPImageProcessorPil(**image_processor).save_pretrained(out_dir)
    return out_dir


def pack_corpus(lines: list[str], tokenizer, seq_len: int) -> torch.Tensor:
    """Tokenize lines (each BOS ... EOS) and cut the stream into rows.

    Returns:
        Tensor: ``(num_rows, seq_len)`` token ids.
    """
    stream: list[int] = []
    for line in lines:
        stream += tokenizer(line).input_ids + [tokenizer.eos_token_id]
    num_rows = len(stream) // seq_len
    if num_rows == 0:
        raise ValueError(f'The corpus has {len(stream)} tokens, fewer than '
                         f'one row of {seq_len}.')
    return torch.tensor(stream[:num_rows * seq_len]).view(num_rows, seq_len)


def pretrain_language_model(llm_config: dict, tokenizer_dir: str,
                            corpus_file: str, out_dir: str,
                            epochs: int = 3, seq_len: int = 128,
                            batch_size: int = 16, lr: float = 1e-3,
                            seed: int = 0) -> list[float]:
    """Train a random-init causal LM on a text file and save it.

    Next-token prediction on the corpus packed into ``seq_len`` rows, AdamW
    with cosine decay, a progress bar with the running loss.

    Args:
        llm_config (dict): Config kwargs with ``model_type``.
        tokenizer_dir (str): Tokenizer folder (saved beside the model).
        corpus_file (str): Text, one document per line.
        out_dir (str): Folder to write with ``save_pretrained``.
        epochs (int): Passes over the corpus.
        seq_len (int): Tokens per row.
        batch_size (int): Rows per step.
        lr (float): Peak learning rate.
        seed (int): Seed of initialisation and order.

    Returns:
        list[float]: The loss of every step.
    """
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    lines = Path(corpus_file).read_text(encoding='utf-8').splitlines()
    rows = pack_corpus([line for line in lines if line.strip()], tokenizer,
                       seq_len)
    config = dict(llm_config)
    model = AutoModelForCausalLM.from_config(
        AutoConfig.for_model(config.pop('model_type'), **config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step /
                                                     total_steps)))
    losses: list[float] = []
    start = time.time()
    columns = (TextColumn('LM pretraining'), BarColumn(), MofNCompleteColumn(),
               TextColumn('loss {task.fields[loss]:.3f}'),
               TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task('lm', total=total_steps, loss=float('nan'))
        for _ in range(epochs):
            for batch in rows[torch.randperm(len(rows))].split(batch_size):
                loss = model(input_ids=batch, labels=batch,
                             use_cache=False).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                progress.update(task, advance=1, loss=losses[-1])
    print(f'LM pretraining: {total_steps} steps on {rows.numel():,} tokens in '
          f'{time.time() - start:.0f} s, loss {losses[0]:.2f} -> '
          f'{losses[-1]:.2f}')
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return losses
