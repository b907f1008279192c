# LLaVA-1.5 stage-2 data: the 665K instruction mix (text-only samples
# included), `vicuna_v1` template, images padded to squares of the CLIP mean
# colour, batches grouped by modality and length.
_base_ = ['../models/llava-1.5_clip-vit-l-336px_vicuna-7b.py']

batch_size = 16
data_root = 'data/LLaVA-Finetune/'
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='LengthGroupedSampler', batch_size=batch_size),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVADataset',
        data_file=data_root + 'llava_v1_5_mix665k.json',
        image_folder=data_root,
        pipeline=[
            dict(type='LoadImage'),
            dict(type='ProcessImage',
                 image_processor=_base_.image_processor,
                 pad_to_square=_base_.image_mean),
            dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
                 template='vicuna_v1', max_length=_base_.max_length),
            dict(type='PackLLaVAInputs'),
        ]),
)
