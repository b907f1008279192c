"""AnyRes (LLaVA-NeXT) on real photos: which grid each photo gets, how many
tiles and image tokens that makes, and greedy answers from a tiny random
model saved and loaded back, batched and one by one.

Runs offline in seconds (photos from scikit-image, the LLaMA tokenizer from
the mistral-common wheel, random weights):

    python examples/anyres_demo.py [--out work_dirs/anyres_demo]

The settings are LLaVA-NeXT's at a twelfth of the scale: 28-px tiles of
7-px patches and the 2024-01 pinpoints scaled alike (1x2, 2x1, 2x2, 1x3,
3x1 tiles). The answers are noise from random weights; what the example
shows is the bookkeeping (see docs/high_resolution.md).
"""
import argparse
from pathlib import Path

import torch
from mmengine.config import Config
from PIL import Image
from skimage import data as photos

from mmllava.apis import get_model, inference_model
from mmllava.models.anyres import grid_shape
from mmllava.testing.demo.assets import (save_random_language_model,
                                         save_random_vision_encoder)
from mmllava.testing.demo.tokenizer import write_llama_tokenizer

TILE, PATCH = 28, 7
PINPOINTS = [(56, 28), (28, 56), (56, 56), (28, 84), (84, 28)]
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, image_size=TILE, patch_size=PATCH)
LLM = dict(model_type='llama', vocab_size=32000, hidden_size=64,
           intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
           num_key_value_heads=2, max_position_embeddings=512,
           bos_token_id=1, eos_token_id=2)


def write_weights(out: Path) -> None:
    """A random CLIP tower, Llama and the real LLaMA tokenizer, saved."""
    write_llama_tokenizer(str(out / 'tokenizer'))
    processor = dict(size=dict(shortest_edge=TILE),
                     crop_size=dict(height=TILE, width=TILE))
    save_random_vision_encoder(VISION, processor, str(out / 'vision'))
    # A wide head: greedy decoding picks clear winners.
    save_random_language_model(LLM, str(out / 'llm'))


def model_config(out: Path) -> Config:
    tokenizer = dict(type='PretrainedTokenizer',
                     pretrained=str(out / 'tokenizer'))
    image_processor = dict(pretrained=str(out / 'vision'))
    return Config(dict(
        model=dict(
            type='LLaVA',
            vision_encoder=dict(type='CLIPVisionEncoder',
                                pretrained=str(out / 'vision')),
            llm=dict(type='HFCausalLM', pretrained=str(out / 'llm')),
            tokenizer=tokenizer, projector=dict(type='mlp2x_gelu'),
            image_aspect_ratio='anyres', image_grid_pinpoints=PINPOINTS,
            mm_patch_merge_type='spatial_unpad',
            generation_cfg=dict(max_new_tokens=8, do_sample=False)),
        test_pipeline=[
            dict(type='LoadImage'),
            dict(type='AnyResImage', image_processor=image_processor,
                 grid_pinpoints=PINPOINTS),
            dict(type='TokenizeConversation', tokenizer=tokenizer,
                 template='vicuna_v1', mode='predict'),
            dict(type='PackLLaVAInputs', meta_keys=('sample_id', )),
        ],
        inference=dict(task='vqa', prompt_suffix='')))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/anyres_demo')
    out = Path(parser.parse_args().out)
    write_weights(out)
    model = get_model(model_config(out), device='cpu')
    # The projector and image_newline of a built model are random too; save
    # everything and load it back as a trained model would be.
    torch.save(dict(state_dict=model.state_dict()), out / 'model.pth')
    model = get_model(model_config(out), pretrained=str(out / 'model.pth'),
                      device='cpu')

    images = {name: Image.fromarray(getattr(photos, name)()).convert('RGB')
              for name in ('astronaut', 'coffee', 'rocket', 'chelsea')}
    images['rocket strip'] = images['rocket'].crop((0, 150, 640, 250))
    print(f'{"photo":<13} {"size (h x w)":>13} {"grid":>5} {"tiles":>6} '
          f'{"image tokens":>13}')
    for name, image in images.items():
        size = (image.height, image.width)
        rows, columns = grid_shape(size, PINPOINTS, TILE)
        print(f'{name:<13} {f"{size[0]} x {size[1]}":>13} '
              f'{f"{rows}x{columns}":>5} {1 + rows * columns:>6} '
              f'{model.image_token_count(size):>13}')

    question = 'What is in the picture?'
    batched = inference_model(model, list(images.values()), question)
    for (name, image), answer in zip(images.items(), batched):
        alone = inference_model(model, image, question)
        same = 'same alone' if alone == answer else 'DIFFERS alone'
        print(f'{name:<13} {answer["pred_answer"]!r} ({same})')


if __name__ == '__main__':
    main()
