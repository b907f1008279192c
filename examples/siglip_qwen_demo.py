"""The LLaVA-NeXT 2024-05 recipe family in miniature: a SigLIP tower, a
Qwen2 (Qwen-1.5) LLM, AnyRes tiles and the ``qwen_1_5`` (ChatML) template.

Runs offline in under a minute on 2 CPU cores (random weights, a byte-level
BPE tokenizer trained on the spot, real photos from scikit-image):

    python examples/siglip_qwen_demo.py [--out work_dirs/siglip_qwen_demo]

It prints one training conversation as ChatML tokens, marking those the
loss learns from, trains the projector and LLM on two photos for a few dozen
steps, and answers a question about each photo; generation stops at
``<|im_end|>``. See docs/siglip_qwen.md for the full-size recipes.
"""
import argparse

import torch
from mmengine.dataset import Compose, pseudo_collate
from PIL import Image
from skimage import data as photos

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.models.answering import answer_samples
from mmllava.models.tokenizer import build_tokenizer
from mmllava.registry import MODELS, TRANSFORMS
from mmllava.testing.demo.qwen_tokenizer import write_qwen_tokenizer

#: SigLIP-SO400M's patch size at a small tile (4 x 4 patches a tile) and
#: LLaVA-NeXT's SigLIP grids scaled to it, (height, width).
TILE = 56
PINPOINTS = [(112, 56), (56, 112), (112, 112), (56, 168), (168, 56)]
SIGLIP = dict(image_size=TILE, patch_size=14, hidden_size=64,
              intermediate_size=128, num_hidden_layers=3,
              num_attention_heads=4)
#: Qwen-1.5-0.5B's layout scaled down: tied embeddings, biased q/k/v.
QWEN = dict(model_type='qwen2', hidden_size=128, intermediate_size=256,
            num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=4096,
            tie_word_embeddings=True)
PROCESSOR = dict(type='SiglipImageProcessor',
                 size=dict(height=TILE, width=TILE))
QUESTION = {'from': 'human', 'value': '<image>\nWhat is in the picture?'}
ANSWERS = {'astronaut': 'An astronaut in a white suit.',
           'coffee': 'A cup of coffee on a saucer.'}


def pipeline(tokenizer: dict, mode: str) -> Compose:
    """Load, AnyRes tiles, ChatML tokens, pack (as the recipes' configs)."""
    return Compose([TRANSFORMS.build(step) for step in [
        dict(type='LoadImage'),
        dict(type='AnyResImage', image_processor=PROCESSOR,
             grid_pinpoints=PINPOINTS),
        dict(type='TokenizeConversation', tokenizer=tokenizer,
             template='qwen_1_5', mode=mode),
        dict(type='PackLLaVAInputs', meta_keys=('sample_id', )),
    ]])


def show_supervision(sample: dict, tokenizer) -> None:
    """The sample's tokens, the supervised ones in [brackets]."""
    pieces = []
    for token, label in zip(sample['inputs']['input_ids'].tolist(),
                            sample['inputs']['labels'].tolist()):
        text = '<image>' if token == IMAGE_TOKEN_INDEX \
            else tokenizer.decode([token])
        pieces.append(repr(text)[1:-1] if label == IGNORE_INDEX
                      else f'[{repr(text)[1:-1]}]')
    print(' '.join(pieces))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/siglip_qwen_demo')
    parser.add_argument('--steps', type=int, default=40)
    args = parser.parse_args()
    tokenizer = dict(type='PretrainedTokenizer',
                     pretrained=write_qwen_tokenizer(args.out + '/tokenizer'))
    vocab_size = len(build_tokenizer(tokenizer))
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(type='SiglipVisionEncoder', config=SIGLIP,
                            select_layer=-2),
        llm=dict(type='HFCausalLM', config=dict(QWEN, vocab_size=vocab_size)),
        tokenizer=tokenizer, projector=dict(type='mlp2x_gelu'),
        template='qwen_1_5', image_aspect_ratio='anyres',
        image_grid_pinpoints=PINPOINTS, mm_patch_merge_type='spatial_unpad',
        generation_cfg=dict(max_new_tokens=24, do_sample=False)))

    images = {name: Image.fromarray(getattr(photos, name)()).convert('RGB')
              for name in ANSWERS}
    train = pipeline(tokenizer, 'train')
    samples = [train(dict(sample_id=name, img=images[name], conversations=[
        QUESTION, {'from': 'gpt', 'value': answer}]))
               for name, answer in ANSWERS.items()]
    print('ChatML training tokens ([supervised]):')
    show_supervision(samples[0], model.tokenizer)
    for name, sample in zip(ANSWERS, samples):
        height, width = sample['inputs']['image_sizes'].tolist()[0]
        print(f'{name}: {height} x {width} px -> '
              f'{len(sample["inputs"]["pixel_values"])} tiles, '
              f'{model.image_token_count((height, width))} image tokens')

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for step in range(args.steps):
        batch = model.data_preprocessor(pseudo_collate(samples))
        loss = model(**batch, mode='loss')['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in (0, args.steps - 1):
            print(f'step {step + 1}: loss {loss.item():.3f}')

    model.eval()
    ask = pipeline(tokenizer, 'predict')
    prompts = [ask(dict(sample_id=name, img=images[name],
                        conversations=[QUESTION])) for name in ANSWERS]
    with torch.no_grad():
        answers = answer_samples(model, prompts)
    for name, answer in zip(ANSWERS, answers):
        print(f'{name}: {answer!r}')


if __name__ == '__main__':
    main()
