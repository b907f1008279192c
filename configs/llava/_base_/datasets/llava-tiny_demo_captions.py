# Demo stage-1 data: the generated scene captions, `plain` template.
_base_ = ['../models/llava-tiny_demo.py']

data_root = 'data/demo/'
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVADataset',
        data_file=data_root + 'pretrain.json',
        image_folder=data_root,
        pipeline=[
            dict(type='LoadImage'),
            dict(type='ProcessImage',
                 image_processor=_base_.image_processor),
            dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
                 template='plain', max_length=_base_.max_length),
            dict(type='PackLLaVAInputs'),
        ]),
)
