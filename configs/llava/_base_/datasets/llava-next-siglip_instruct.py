# LLaVA-NeXT stage-2 data: the LLaVA-NeXT instruction mix (the official
# scripts' llava_1_6.json; released as lmms-lab/LLaVA-NeXT-Data, 779K
# samples), `qwen_1_5` template, AnyRes images, batches grouped by modality
# and length (group_by_modality_length).
_base_ = ['../models/llava-next_siglip-so400m-384px_qwen1.5-0.5b.py']

# The official finetune_siglip.sh: 4 samples per GPU, no accumulation.
batch_size = 4
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
                 template='qwen_1_5', max_length=_base_.max_length),
            dict(type='PackLLaVAInputs'),
        ]),
)
