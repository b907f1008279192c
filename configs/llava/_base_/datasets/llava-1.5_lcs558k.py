# LLaVA-1.5 stage-1 data: LCS-558K captions, `plain` template; images keep the
# processor's resize and centre crop (no pad), as the official pretrain run.
_base_ = ['../models/llava-1.5_clip-vit-l-336px_vicuna-7b.py']

data_root = 'data/LLaVA-Pretrain/'
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVADataset',
        data_file=data_root + 'blip_laion_cc_sbu_558k.json',
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
