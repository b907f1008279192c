"""Weights for the embedded demo, made on this machine.

The demo needs no download. Its vision tower is a small CLIP ViT pretrained
here with CLIP's own contrastive objective on the training scenes' captions
(a random tower's features barely vary between images, see
docs/get_started.md), and its LLM is a small random-init Llama that first
gets a short language pretraining on the generated demo text (a frozen random
LLM would leave stage 1 little to align to). Both are saved with
``save_pretrained`` and loaded by the demo configs through the real
``from_pretrained`` path, like real checkpoints.
"""
import json
import math
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch
from rich.progress import (BarColumn, MofNCompleteColumn, Progress,
                           TextColumn, TimeRemainingColumn)
from PIL import Image
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer,
                          CLIPConfig, CLIPImageProcessorPil, CLIPModel,
                          CLIPVisionConfig, CLIPVisionModel)


def train_for_steps(name: str, steps: int,
                    next_pass: Callable[[], Iterable],
                    compute_loss: Callable[[Any], torch.Tensor],
                    optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler,
                    max_grad_norm: Optional[float] = None) -> list[float]:
    """Run ``steps`` optimizer steps over passes of batches, showing a bar
    with the running loss.

    Args:
        name (str): Shown beside the bar.
        steps (int): Optimizer steps; the last pass is cut where they end.
        next_pass (Callable): Returns the batches of one (shuffled) pass.
        compute_loss (Callable): A batch's loss.
        optimizer, scheduler: Stepped after every batch.
        max_grad_norm (float, optional): Clip the gradient norm to this.

    Returns:
        list[float]: The loss of every step.
    """
    parameters = [p for group in optimizer.param_groups
                  for p in group['params']]
    losses: list[float] = []
    with Progress(TextColumn(name), BarColumn(), MofNCompleteColumn(),
                  TextColumn('loss {task.fields[loss]:.3f}'),
                  TimeRemainingColumn()) as progress:
        task = progress.add_task(name, total=steps, loss=float('nan'))
        while len(losses) < steps:
            for batch in next_pass():
                loss = compute_loss(batch)
                loss.backward()
                if max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                losses.append(loss.item())
                progress.update(task, advance=1, loss=losses[-1])
                if len(losses) == steps:
                    break
    return losses


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


def save_random_language_model(llm_config: dict, out_dir: str,
                               seed: int = 0) -> str:
    """Save a random-init causal LM whose LM head is redrawn with std 1.

    A random 0.02-std head gives near-equal logits, where greedy decoding
    would follow rounding noise; a wide head gives clear winners, so that
    answers generated in different ways can be compared token for token.

    Args:
        llm_config (dict): Config kwargs with ``model_type``.
        out_dir (str): Folder to write with ``save_pretrained``.
        seed (int): Seed of the initialisation.
    """
    config = dict(llm_config)
    torch.manual_seed(seed)
    llm = AutoModelForCausalLM.from_config(
        AutoConfig.for_model(config.pop('model_type'), **config))
    with torch.no_grad():
        llm.get_output_embeddings().weight.normal_(0, 1)
    llm.save_pretrained(out_dir)
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
                            steps: int = 200, seq_len: int = 128,
                            batch_size: int = 16, lr: float = 1e-3,
                            seed: int = 0) -> list[float]:
    """Train a random-init causal LM on a text file and save it.

    Next-token prediction on the corpus packed into ``seq_len`` rows, AdamW
    with cosine decay, a progress bar with the running loss. The length is
    set in steps, not passes, so that a larger corpus (more demo scenes)
    costs no more time: the rows are drawn in shuffled passes, the last one
    cut where the steps end.

    Args:
        llm_config (dict): Config kwargs with ``model_type``.
        tokenizer_dir (str): Tokenizer folder (saved beside the model).
        corpus_file (str): Text, one document per line.
        out_dir (str): Folder to write with ``save_pretrained``.
        steps (int): Optimizer steps.
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
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    start = time.time()
    losses = train_for_steps(
        'LM pretraining', steps,
        lambda: rows[torch.randperm(len(rows))].split(batch_size),
        lambda batch: model(input_ids=batch, labels=batch,
                            use_cache=False).loss,
        optimizer, scheduler, max_grad_norm=1.0)
    print(f'LM pretraining: {steps} steps of {batch_size} x {seq_len} tokens '
          f'({len(rows):,} rows in the corpus) in {time.time() - start:.0f} '
          f's, loss {losses[0]:.2f} -> {losses[-1]:.2f}')
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return losses


def caption_word_ids(captions: list[str]) -> tuple[torch.Tensor, dict]:
    """Captions as word ids for CLIP's text tower: a vocabulary of the
    captions' lower-case words (ids from 2), each caption ended by id 1 (the
    text tower's end token, whose state is the caption's embedding) and
    padded with 0.

    Returns:
        tuple: ``(N, L)`` ids and the vocabulary.
    """
    words = [re.findall(r'[a-z]+', caption.lower()) for caption in captions]
    vocabulary = {word: index + 2 for index, word in
                  enumerate(sorted({word for line in words for word in line}))}
    ids = torch.zeros(len(captions), max(map(len, words)) + 1,
                      dtype=torch.long)
    for row, line in enumerate(words):
        ids[row, :len(line) + 1] = torch.tensor(
            [vocabulary[word] for word in line] + [1])
    return ids, vocabulary


def pretrain_vision_encoder(vision_config: dict, image_processor: dict,
                            caption_file: str, image_folder: str,
                            out_dir: str, text_config: dict,
                            steps: int = 300, batch_size: int = 128,
                            lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Pretrain a CLIP vision tower on image-caption pairs and save it.

    CLIP's contrastive objective (transformers' ``CLIPModel`` with
    ``return_loss=True``): a vision tower and a small text tower over the
    captions' words learn embeddings in which each image is nearest its own
    caption among the batch's. Only the vision tower is kept, with its image
    processor, as :func:`save_random_vision_encoder` saves a random one.

    Args:
        vision_config (dict): ``CLIPVisionConfig`` kwargs.
        image_processor (dict): ``CLIPImageProcessor`` kwargs.
        caption_file (str): LLaVA records with an image and the caption as
            the first gpt turn (the stage-1 ``pretrain.json``).
        image_folder (str): Folder the records' image paths are relative to.
        out_dir (str): Folder to write with ``save_pretrained``.
        text_config (dict): ``CLIPTextConfig`` kwargs of the text tower
            (its vocabulary size and length are set from the captions).
        steps (int): Optimizer steps (AdamW, 5% warmup, cosine decay).
        batch_size (int): Image-caption pairs per step: each image's
            negatives are the other captions of its batch.
        lr (float): Peak learning rate.
        seed (int): Seed of the initialisation and order.

    Returns:
        list[float]: The loss of every step.
    """
    torch.manual_seed(seed)
    records = json.loads(Path(caption_file).read_text(encoding='utf-8'))
    captions = []
    for record in records:
        answers = [turn['value'] for turn in record.get('conversations', [])
                   if turn.get('from') == 'gpt']
        if 'image' not in record or not answers:
            raise ValueError(f'{caption_file}: record {record.get("id")!r} '
                             'needs an image and a gpt turn (its caption).')
        captions.append(answers[0])
    ids, vocabulary = caption_word_ids(captions)
    processor = CLIPImageProcessorPil(**image_processor)
    pixel_values = processor(
        [Image.open(Path(image_folder, record['image'])).convert('RGB')
         for record in records], return_tensors='pt')['pixel_values']
    text_config = dict(text_config, vocab_size=len(vocabulary) + 2,
                       max_position_embeddings=ids.shape[1],
                       pad_token_id=0, bos_token_id=0, eos_token_id=1)
    model = CLIPModel(CLIPConfig(text_config=text_config,
                                 vision_config=vision_config,
                                 projection_dim=vision_config['hidden_size']))
    # CLIP's weight decay leaves out gains, biases and the logit scale.
    decayed = [p for p in model.parameters() if p.ndim >= 2]
    kept = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [dict(params=decayed, weight_decay=0.1),
         dict(params=kept, weight_decay=0.0)], lr=lr)
    warmup = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 *
        (1 + math.cos(math.pi * step / steps)))
    batch_size = min(batch_size, len(records))

    def next_pass() -> list[torch.Tensor]:
        # Full batches only: the contrastive task's difficulty depends on
        # the number of captions to choose from.
        order = torch.randperm(len(records))
        return list(order[:len(order) // batch_size * batch_size].split(
            batch_size))

    def compute_loss(batch: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids[batch],
                     attention_mask=(ids[batch] != 0).long(),
                     pixel_values=pixel_values[batch],
                     return_loss=True).loss

    start = time.time()
    losses = train_for_steps('CLIP pretraining', steps, next_pass,
                             compute_loss, optimizer, scheduler)
    print(f'CLIP pretraining: {steps} steps on {len(records)} image-caption '
          f'pairs in {time.time() - start:.0f} s, loss {losses[0]:.2f} -> '
          f'{losses[-1]:.2f} (chance {math.log(batch_size):.2f})')
    tower = CLIPVisionModel(CLIPVisionConfig(**vision_config))
    tower.load_state_dict(model.vision_model.state_dict())
    tower.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return losses
