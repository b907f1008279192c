# Demo stage-2 data: the generated conversations, descriptions, reasoning,
# short answers and captions (10% text-only), `vicuna_v1` template, images
# padded to squares, batches grouped by modality and length.
_base_ = ['./llava-tiny_demo_captions.py']

batch_size = 8
train_dataloader = _base_.train_dataloader
# On one process the official grouping (mega_batch_mult=1) groups nothing.
train_dataloader.sampler = dict(type='LengthGroupedSampler',
                                batch_size=batch_size, mega_batch_mult=8)
train_dataloader.dataset.data_file = 'data/demo/instruct.json'
train_dataloader.dataset.pipeline = [
    dict(type='LoadImage'),
    dict(type='ProcessImage', image_processor=_base_.image_processor,
         pad_to_square=_base_.image_mean),
    dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
         template='vicuna_v1', max_length=_base_.max_length),
    dict(type='PackLLaVAInputs'),
]
