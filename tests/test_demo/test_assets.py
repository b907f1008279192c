"""The demo's weights: CLIP contrastive pretraining of the vision tower and
the LLM's language pretraining."""
import json

import pytest
import torch
from PIL import Image
from transformers import AutoModelForCausalLM, CLIPImageProcessorPil

from mmllava.testing.demo.assets import (caption_word_ids,
                                         pretrain_language_model,
                                         pretrain_vision_encoder)
from mmllava.testing.demo.tokenizer import write_llama_tokenizer
from mmllava.testing.demo.synthetic_scenes import generate_demo_dataset
from mmllava.models.vision_encoders import CLIPVisionEncoder

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, image_size=32, patch_size=16)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4)
PROCESSOR = dict(size=dict(shortest_edge=32),
                 crop_size=dict(height=32, width=32))


def test_caption_word_ids_end_each_caption_and_pad():
    ids, vocabulary = caption_word_ids(['A red circle.', 'A blue square'])
    assert sorted(vocabulary) == ['a', 'blue', 'circle', 'red', 'square']
    assert min(vocabulary.values()) == 2
    assert ids.tolist() == [
        [vocabulary['a'], vocabulary['red'], vocabulary['circle'], 1],
        [vocabulary['a'], vocabulary['blue'], vocabulary['square'], 1]]
    short, _ = caption_word_ids(['One.', 'Two words'])
    assert short[0].tolist() == [2, 1, 0]


@pytest.mark.slow
def test_the_tower_learns_to_match_images_and_captions(tmp_path):
    data = tmp_path / 'data'
    generate_demo_dataset(data, num_train=32, num_eval=1, image_size=32)
    out = tmp_path / 'tower'
    losses = pretrain_vision_encoder(
        VISION, PROCESSOR, str(data / 'pretrain.json'), str(data), str(out),
        TEXT, steps=100, batch_size=16, lr=1e-3)
    assert len(losses) == 100
    # Chance is ln 16 = 2.77: it learns to tell its 32 scenes' captions
    # apart.
    assert sum(losses[:5]) / 5 > 2.4
    assert sum(losses[-5:]) / 5 < 1.0, losses[-5:]
    # The saved tower loads through the configs' from_pretrained path with
    # its image processor, and its features tell the scenes apart.
    encoder = CLIPVisionEncoder(pretrained=str(out))
    processor = CLIPImageProcessorPil.from_pretrained(str(out))
    images = [Image.open(path).convert('RGB')
              for path in sorted((data / 'images').glob('train_*.png'))[:2]]
    with torch.no_grad():
        features = encoder(processor(images, return_tensors='pt')
                           ['pixel_values'])
    assert features.shape == (2, 4, 32)
    assert not torch.allclose(features[0], features[1])


@pytest.mark.slow
def test_language_pretraining_runs_its_steps_and_saves(tmp_path):
    corpus = tmp_path / 'corpus.txt'
    corpus.write_text('A large red circle on the left.\n' * 20)
    losses = pretrain_language_model(
        dict(model_type='llama', vocab_size=32000, hidden_size=32,
             intermediate_size=64, num_hidden_layers=1,
             num_attention_heads=2, max_position_embeddings=64),
        write_llama_tokenizer(str(tmp_path / 'tokenizer')), str(corpus),
        str(tmp_path / 'llm'), steps=30, seq_len=32, batch_size=2, lr=1e-2)
    # The corpus has 6 rows: 30 steps are 10 passes, the last one cut.
    assert len(losses) == 30
    assert losses[-1] < losses[0] - 2
    assert AutoModelForCausalLM.from_pretrained(
        str(tmp_path / 'llm')).config.hidden_size == 32


def test_a_record_without_a_caption_is_named(tmp_path):
    captions = tmp_path / 'captions.json'
    captions.write_text(json.dumps([dict(id='scene_7', image='a.png',
                                         conversations=[])]))
    with pytest.raises(ValueError, match="record 'scene_7' needs an image"):
        pretrain_vision_encoder(VISION, PROCESSOR, str(captions),
                                str(tmp_path), str(tmp_path / 'out'), TEXT)
