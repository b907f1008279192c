# LLaVA-NeXT stage-2 data: the LLaVA-NeXT instruction mix (the 2024-01 mix
# was described, not released; lmms-lab/LLaVA-NeXT-Data holds 779K samples of
# it), `vicuna_v1` template, AnyRes images, batches grouped by modality and
# length.
_base_ = ['../models/llava-next_clip-vit-l-336px_vicuna-7b.py']

# 8 GPUs x 16 = global batch 128, as LLaVA-1.5's stage 2.
batch_size = 16
data_root = 'data/LLaVA-NeXT-Data/'
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='LengthGroupedSampler', batch_size=batch_size),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVADataset',
        data_file=data_root + 'llava_next_779k.json',
        image_folder=data_root + 'images',
        pipeline=[
            dict(type='LoadImage'),
            dict(type='AnyResImage', image_processor=_base_.image_processor,
                 grid_pinpoints=_base_.image_grid_pinpoints),
            dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
                 template='vicuna_v1', max_length=_base_.max_length),
            dict(type='PackLLaVAInputs'),
        ]),
)
