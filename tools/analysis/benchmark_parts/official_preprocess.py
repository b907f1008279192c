"""The official LLaVA preprocessing, sample by sample: the data path's
baseline.

A plain re-statement of what ``LazySupervisedDataset.__getitem__`` and
``DataCollatorForSupervisedDataset`` (``llava/train/train.py``) do for the
``plain`` and ``vicuna_v1`` templates: open the image, pad it to a square of
the mean colour, run the image processor; move ``<image>`` to the front of
its message, render the prompt, tokenize it split at ``<image>``, then mask
the instructions by re-tokenizing every round (the ``-2`` / non-legacy
``-1`` offsets included); pad the batch and stack the images (text-only
samples get a zero image).
"""
import copy
import json
import os.path as osp

import torch
from PIL import Image
from transformers import CLIPImageProcessorPil

from mmllava.constants import IGNORE_INDEX, IMAGE_PLACEHOLDER, \
    IMAGE_TOKEN_INDEX

#: vicuna_v1 as the official ``conv_templates['vicuna_v1']`` spells it.
VICUNA_V1_SYSTEM = ('A chat between a curious user and an artificial '
                    'intelligence assistant. The assistant gives helpful, '
                    "detailed, and polite answers to the user's questions.")
ROLES, SEP, SEP2 = ('USER', 'ASSISTANT'), ' ', '</s>'


def tokenize_with_images(prompt: str, tokenizer) -> list[int]:
    """Each ``<image>``-separated chunk tokenized alone; the BOS of every
    chunk but the first dropped; the image index between chunks."""
    ids: list[int] = []
    for index, chunk in enumerate(prompt.split(IMAGE_PLACEHOLDER)):
        chunk_ids = tokenizer(chunk).input_ids
        if index > 0:
            ids.append(IMAGE_TOKEN_INDEX)
            if chunk_ids and chunk_ids[0] == tokenizer.bos_token_id:
                chunk_ids = chunk_ids[1:]
        ids += chunk_ids
    return ids


def square(image: Image.Image, background: tuple) -> Image.Image:
    width, height = image.size
    if width == height:
        return image
    canvas = Image.new(image.mode, (max(width, height), ) * 2, background)
    canvas.paste(image, ((max(width, height) - width) // 2,
                         (max(width, height) - height) // 2))
    return canvas


def image_first(turns: list[dict]) -> list[dict]:
    for turn in turns:
        if IMAGE_PLACEHOLDER in turn['value']:
            text = turn['value'].replace(IMAGE_PLACEHOLDER, '').strip()
            turn['value'] = (IMAGE_PLACEHOLDER + '\n' + text).strip()
    return turns


def preprocess_plain(turns: list[dict], tokenizer):
    prompt = IMAGE_PLACEHOLDER + turns[1]['value'] + '\n'
    input_ids = tokenize_with_images(prompt, tokenizer)
    masked = len(tokenize_with_images(IMAGE_PLACEHOLDER, tokenizer))
    labels = [IGNORE_INDEX] * masked + input_ids[masked:]
    return input_ids, labels


def preprocess_vicuna_v1(turns: list[dict], tokenizer, has_image: bool):
    if turns[0]['from'] != 'human':
        turns = turns[1:]
    prompt = VICUNA_V1_SYSTEM + SEP
    for index, turn in enumerate(turns):
        prompt += ROLES[index % 2] + ': ' + turn['value'] + \
            (SEP, SEP2)[index % 2]

    def encode(text):
        return tokenize_with_images(text, tokenizer) if has_image \
            else tokenizer(text).input_ids

    input_ids = encode(prompt)
    labels = list(input_ids)
    answer_sep = SEP + ROLES[1] + ': '
    position = 1
    labels[:position] = [IGNORE_INDEX]
    for index, round_text in enumerate(prompt.split(SEP2)):
        if not round_text:
            break
        parts = round_text.split(answer_sep)
        if len(parts) != 2:
            break
        round_len = len(encode(round_text))
        instruction_len = len(encode(parts[0] + answer_sep)) - 2
        if index > 0 and not tokenizer.legacy:
            round_len -= 1
            instruction_len -= 1
        labels[position:position + instruction_len] = \
            [IGNORE_INDEX] * len(labels[position:position + instruction_len])
        position += round_len
    labels[position:] = [IGNORE_INDEX] * len(labels[position:])
    if position != len(input_ids):
        # The official "tokenization mismatch": the whole sample is masked.
        labels = [IGNORE_INDEX] * len(input_ids)
    return input_ids, labels


class OfficialStyleDataset:
    """One LLaVA json file, read and preprocessed per sample.

    Args:
        data_file (str): The json list.
        image_folder (str): Where ``image`` paths point.
        template (str): ``'plain'`` or ``'vicuna_v1'``.
        tokenizer: The LLM's tokenizer.
        image_processor (dict): ``CLIPImageProcessor`` kwargs.
    """

    def __init__(self, data_file: str, image_folder: str, template: str,
                 tokenizer, image_processor: dict) -> None:
        with open(data_file) as file:
            self.records = json.load(file)
        self.image_folder = image_folder
        self.template = template
        self.tokenizer = tokenizer
        kwargs = {k: v for k, v in image_processor.items() if k != 'type'}
        self.processor = CLIPImageProcessorPil(**kwargs)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        turns = copy.deepcopy(record['conversations'])
        has_image = 'image' in record
        if has_image:
            image = Image.open(osp.join(self.image_folder,
                                        record['image'])).convert('RGB')
            image = square(image, tuple(
                int(value * 255) for value in self.processor.image_mean))
            pixels = self.processor.preprocess(
                image, return_tensors='pt')['pixel_values'][0]
            turns = image_first(turns)
        else:
            crop = self.processor.crop_size
            pixels = torch.zeros(3, crop['height'], crop['width'])
        if self.template == 'plain':
            input_ids, labels = preprocess_plain(turns, self.tokenizer)
        else:
            input_ids, labels = preprocess_vicuna_v1(turns, self.tokenizer,
                                                     has_image)
        return dict(input_ids=torch.tensor(input_ids),
                    labels=torch.tensor(labels), image=pixels)


def collate(samples: list[dict], pad_token_id: int,
            max_length: int) -> dict:
    """``DataCollatorForSupervisedDataset``."""
    input_ids = torch.nn.utils.rnn.pad_sequence(
        [s['input_ids'] for s in samples], batch_first=True,
        padding_value=pad_token_id)[:, :max_length]
    labels = torch.nn.utils.rnn.pad_sequence(
        [s['labels'] for s in samples], batch_first=True,
        padding_value=IGNORE_INDEX)[:, :max_length]
    return dict(input_ids=input_ids, labels=labels,
                attention_mask=input_ids.ne(pad_token_id),
                images=torch.stack([s['image'] for s in samples]))
