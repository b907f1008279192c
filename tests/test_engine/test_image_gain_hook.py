"""``mmllava/engine/hooks/image_gain_hook.py``: a model's held-out loss with
its own images against shuffled and blank ones."""
import json
import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner
from PIL import Image, ImageDraw

from mmllava.engine.hooks.image_gain_hook import (holds_sharded_weights,
                                                  image_derangement)
from mmllava.registry import HOOKS, MODELS
from mmllava.utils.plot import find_scalars_file, load_scalars

IMAGE_MEAN = (0.48145466, 0.4578275, 0.40821073)
PROCESSOR = dict(type='CLIPImageProcessor', size=dict(shortest_edge=32),
                 crop_size=dict(height=32, width=32),
                 image_mean=list(IMAGE_MEAN),
                 image_std=[0.26862954, 0.26130258, 0.27577711])
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, image_size=32, patch_size=8)
LLM = dict(model_type='llama', hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
           vocab_size=32000, max_position_embeddings=256)
COLOURS = dict(red=(220, 30, 30), green=(30, 170, 40), blue=(30, 60, 220),
               yellow=(230, 220, 30))

# Tiny tensors: one thread runs this module faster.
pytestmark = pytest.mark.usefixtures('one_thread')


def pipeline(tokenizer):
    """The stage-1 training pipeline (``plain``: the image, then the
    answer), images padded to squares."""
    return [
        dict(type='LoadImage'),
        dict(type='PadToSquare', mean=IMAGE_MEAN),
        dict(type='ProcessImage', image_processor=PROCESSOR),
        dict(type='TokenizeConversation', tokenizer=tokenizer,
             template='plain'),
        dict(type='PackLLaVAInputs'),
    ]


def build_model(tokenizer):
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='LLaVA',
        vision_encoder=dict(type='CLIPVisionEncoder', config=VISION,
                            select_layer=-2, select_feature='patch'),
        llm=dict(type='HFCausalLM', config=LLM), tokenizer=tokenizer,
        projector=dict(type='mlp2x_gelu'), template='plain'))


def record(index, colour, kind='colour', answer=None):
    return dict(id=f'{colour}_{index}', image=f'{colour}.png', type=kind,
                conversations=[
                    {'from': 'human', 'value': '<image>\nWhat colour?'},
                    {'from': 'gpt', 'value': answer or colour}])


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    """A drawn image per colour (wider than high, a lighter disc on a
    coloured ground) and record files."""
    root = tmp_path_factory.mktemp('image_gain')
    for name, rgb in COLOURS.items():
        image = Image.new('RGB', (40, 32), rgb)
        ImageDraw.Draw(image).ellipse(
            (10, 6, 30, 26), fill=tuple((c + 255) // 2 for c in rgb))
        image.save(root / f'{name}.png')
    colours = [record(0, name) for name in COLOURS]
    (root / 'colours.json').write_text(json.dumps(colours))
    # Two kinds over the four images, a text-only record and one with
    # several images.
    kinds = colours + [record(1, name, 'shape', 'a disc') for name in COLOURS]
    kinds.append(dict(id='text', type='shape', conversations=[
        {'from': 'human', 'value': 'What is a disc?'},
        {'from': 'gpt', 'value': 'A round shape.'}]))
    kinds.append(dict(id='pair', type='shape',
                      image=[f'{name}.png' for name in list(COLOURS)[:2]],
                      conversations=[
                          {'from': 'human', 'value': '<image> <image>?'},
                          {'from': 'gpt', 'value': 'Two discs.'}]))
    (root / 'kinds.json').write_text(json.dumps(kinds))
    return root


def build_hook(folder, tokenizer, data_file='colours.json', **kwargs):
    cfg = dict(type='ImageGainHook', data_file=str(folder / data_file),
               image_folder=str(folder), pipeline=pipeline(tokenizer),
               batch_size=3)
    return HOOKS.build(dict(cfg, **kwargs))


class Capture(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        # The hook's own lines (the logger is also the 'current' one that
        # the registry and the model write to).
        message = record.getMessage()
        if message.startswith(('ImageGainHook', 'Image gain')):
            self.messages.append(message)


class Visualizer:
    """Records what the hook writes."""

    def __init__(self):
        self.scalars = []

    def add_scalars(self, scalars, step=0):
        self.scalars.append((step, scalars))


def fake_runner(model, iteration=0):
    logger = MMLogger.get_instance('image_gain_test')
    capture = Capture()
    logger.handlers = [capture]
    runner = SimpleNamespace(
        model=model, iter=iteration, logger=logger, visualizer=Visualizer(),
        message_hub=MessageHub.get_instance('image_gain_test'))
    return runner, capture


def own_batch(model, hook):
    """The hook's samples with their own images, as one batch."""
    own = hook._variants['own']
    return model.data_preprocessor(
        pseudo_collate([own[i][1] for i in range(len(own))]))


@pytest.fixture(scope='module')
def colour_model(folder, tokenizer):
    """A model whose answers depend on the image: a few steps on the four
    colour records."""
    model = build_model(tokenizer)
    hook = build_hook(folder, tokenizer)
    hook.before_train(fake_runner(model)[0])
    batch = own_batch(model, hook)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(40):
        loss = model(**batch, mode='loss')['loss']
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, hook


def test_a_model_blind_to_its_images_gains_nothing(folder, tokenizer):
    model = build_model(tokenizer)
    with torch.no_grad():
        model.projector[-1].weight.zero_()
        model.projector[-1].bias.zero_()
    hook = build_hook(folder, tokenizer, 'kinds.json')
    hook.before_train(fake_runner(model)[0])
    scalars, num_kept, num_left_out = hook.compute(model)
    assert (num_kept, num_left_out) == (8, 0)
    for key in ('val/image_gain', 'val/image_gain_blank',
                'val/colour/image_gain', 'val/shape/image_gain_blank'):
        assert abs(scalars[key]) < 1e-5, key
    assert scalars['val/loss_own'] > 1  # a random LM: a real loss


def test_a_model_reading_its_images_gains(colour_model):
    model, hook = colour_model
    model.train()
    runner, capture = fake_runner(model, iteration=39)
    hook.after_train_iter(runner, batch_idx=39)  # not at interval 500
    assert runner.visualizer.scalars == []
    hook.after_train(runner)
    (step, scalars), = runner.visualizer.scalars
    assert step == 39
    assert scalars['val/image_gain'] > 0.1
    assert scalars['val/image_gain_blank'] > 0.1
    assert scalars['val/image_gain'] == pytest.approx(
        scalars['val/loss_shuffled'] - scalars['val/loss_own'])
    assert scalars['val/image_gain_blank'] == pytest.approx(
        scalars['val/loss_blank'] - scalars['val/loss_own'])
    # Back in train mode; the message hub and the log have it too.
    assert model.training
    assert runner.message_hub.get_info('image_gain') == dict(scalars,
                                                             iter=39)
    message, = capture.messages
    assert message.startswith('Image gain after 39 iterations on 4 samples')


def test_loss_own_is_the_token_weighted_mean_over_the_set(colour_model):
    model, hook = colour_model
    batch = own_batch(model, hook)
    model.eval()
    with torch.no_grad():
        loss = model(**batch, mode='loss')['loss']
    scalars, _, _ = hook.compute(model)
    assert scalars['val/loss_own'] == pytest.approx(float(loss), abs=1e-5)


def test_derangement_gives_every_sample_another_image():
    paths = ['a'] * 3 + ['b'] * 2 + ['c'] * 2 + ['d', 'e']
    perm = image_derangement(paths, seed=0)
    assert sorted(perm) == list(range(len(paths)))  # a permutation
    assert all(paths[perm[i]] != paths[i] for i in range(len(paths)))
    assert image_derangement(paths, seed=0) == perm
    assert image_derangement(paths, seed=1) != perm
    assert image_derangement(['a', 'b'], seed=3) == [1, 0]
    with pytest.raises(ValueError, match='3 of the 5 samples share'):
        image_derangement(['a', 'a', 'a', 'b', 'c'])
    with pytest.raises(ValueError, match='1 distinct images'):
        image_derangement(['a', 'a'])


def test_kinds_are_measured_text_only_and_several_image_records_skipped(
        folder, tokenizer):
    model = build_model(tokenizer)
    hook = build_hook(folder, tokenizer, 'kinds.json', interval=2,
                      at_start=True)
    runner, capture = fake_runner(model)
    hook.before_train(runner)
    skipped, several, measured = capture.messages
    assert 'skipping the 1 text-only records' in skipped
    assert 'skipping the 1 records of' in several
    assert 'with several images' in several
    assert 'per kind vs shuffled: colour ' in measured
    (step, scalars), = runner.visualizer.scalars
    assert step == 0
    assert sorted(scalars) == sorted(
        ['val/loss_own', 'val/loss_shuffled', 'val/loss_blank',
         'val/image_gain', 'val/image_gain_blank', 'val/colour/image_gain',
         'val/colour/image_gain_blank', 'val/shape/image_gain',
         'val/shape/image_gain_blank'])
    runner.iter = 1
    hook.after_train_iter(runner, batch_idx=1)  # the 2nd iteration
    assert [step for step, _ in runner.visualizer.scalars] == [0, 2]
    runner.iter = 2
    hook.after_train(runner)  # measured at 2 already
    assert len(runner.visualizer.scalars) == 2


@pytest.mark.slow
def test_kinds_select_the_records_measured(folder, tokenizer):
    model = build_model(tokenizer)
    hook = build_hook(folder, tokenizer, 'kinds.json', kinds=('colour',))
    hook.before_train(fake_runner(model)[0])
    scalars, num_kept, _ = hook.compute(model)
    assert num_kept == 4
    assert 'val/colour/image_gain' in scalars
    assert 'val/shape/image_gain' not in scalars
    with pytest.raises(ValueError, match="no record .* 'type' in"):
        build_hook(folder, tokenizer, 'kinds.json',
                   kinds=('count',)).before_train(fake_runner(model)[0])


@pytest.mark.slow
def test_the_scalars_reach_a_runners_scalar_log(folder, tokenizer,
                                                 tmp_path):
    model = build_model(tokenizer)
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=dict(type='LLaVADataset',
                         data_file=str(folder / 'colours.json'),
                         image_folder=str(folder),
                         pipeline=pipeline(tokenizer)),
            batch_size=2, sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(by_epoch=False, max_iters=3),
        default_hooks=dict(checkpoint=None),
        custom_hooks=[dict(
            type='ImageGainHook', data_file=str(folder / 'colours.json'),
            image_folder=str(folder), pipeline=pipeline(tokenizer),
            interval=2)],
        default_scope='mmllava')
    runner.train()
    scalars_file = find_scalars_file(tmp_path)
    # At iteration 2 by the interval, at 3 at the end of training.
    iters, gains = load_scalars(scalars_file, 'val/image_gain')
    assert iters == [2, 3]
    assert runner.message_hub.get_info('image_gain')['iter'] == 3
    assert gains[-1] == runner.message_hub.get_info(
        'image_gain')['val/image_gain']


def test_arguments_are_checked(folder, tokenizer):
    with pytest.raises(ValueError, match='batch_size must be a positive'):
        build_hook(folder, tokenizer, batch_size=0)
    hook = build_hook(folder, tokenizer, pipeline=[dict(type='LoadImage')])
    with pytest.raises(ValueError, match='needs the image processor'):
        hook.before_train(fake_runner(None)[0])


def test_sharded_weights_are_said_and_skipped(folder, tokenizer):
    model = build_model(tokenizer)
    assert not holds_sharded_weights(model)
    # DeepSpeed ZeRO-3 marks each partitioned parameter with a ds_id.
    next(model.parameters()).ds_id = 0
    assert holds_sharded_weights(model)
    hook = build_hook(folder, tokenizer, at_start=True)
    runner, capture = fake_runner(model)
    hook.before_train(runner)
    assert 'sharded across processes' in capture.messages[-1]
    hook.after_train(runner)
    assert runner.visualizer.scalars == []


def test_measuring_leaves_the_random_state_as_found(colour_model):
    model, hook = colour_model
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    hook.compute(model)
    assert torch.equal(torch.rand(3), expected)
