# LLaVA-NeXT (SigLIP-384) stage-1 data: LCS-558K captions, `plain` template.
# The official pretrain run sets no image_aspect_ratio, so each image is one
# tile: SigLIP's processor resizes it to 384x384 (no pad, no AnyRes).
_base_ = ['../models/llava-next_siglip-so400m-384px_qwen1.5-0.5b.py']

# The official pretrain model_max_length.
pretrain_max_length = 8192
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
                 template='plain', max_length=pretrain_max_length),
            dict(type='PackLLaVAInputs'),
        ]),
)
