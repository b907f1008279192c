# LLaVA v1 stage-1 data: CC-595K captions, `plain` template, the processor's
# resize and centre crop.
_base_ = ['../models/llava-v1_clip-vit-l-224px_vicuna-7b.py']

data_root = 'data/LLaVA-CC3M-Pretrain-595K/'
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVADataset',
        data_file=data_root + 'chat.json',
        image_folder=data_root + 'images',
        pipeline=[
            dict(type='LoadImage'),
            dict(type='ProcessImage',
                 image_processor=_base_.image_processor),
            dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
                 template='plain', max_length=_base_.max_length),
            dict(type='PackLLaVAInputs'),
        ]),
)
