# LLaVA-1.5-7B stage 2, instruction tuning: projector and LLM learn on the
# 665K mix (text-only samples included) with the `vicuna_v1` template; images
# padded to squares; batches grouped by modality and length.
# 8 GPUs x 16 = global batch 128.
_base_ = [
    './_base_/models/llava-1.5_clip-vit-l-336px_vicuna-7b.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='vicuna_v1',
    # The stage-1 result: its work dir (latest checkpoint), a checkpoint, or
    # the official mm_projector.bin.
    projector_pretrained='work_dirs/llava-1.5-7b_pretrain')

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
            dict(type='PadToSquare', mean=_base_.image_mean),
            dict(type='ProcessImage',
                 image_processor=_base_.image_processor),
            dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
                 template='vicuna_v1', max_length=_base_.max_length,
                 num_image_tokens=_base_.num_image_tokens),
            dict(type='PackLLaVAInputs'),
        ]),
)
