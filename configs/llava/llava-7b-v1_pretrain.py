# LLaVA v1 (7B) stage 1: only the linear projector learns, on CC-595K
# captions with the `plain` template; lr 2e-3, 8 GPUs x 16 = global batch 128.
_base_ = [
    './_base_/models/llava-v1_clip-vit-l-224px_vicuna-7b.py',
    './_base_/schedules/pretrain_1e.py',
    './_base_/default_runtime.py',
]

model = dict(freeze_llm=True, template='plain')
optim_wrapper = dict(optimizer=dict(lr=2e-3))
auto_scale_lr = dict(base_batch_size=128)

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
            # v1 keeps the processor's resize and centre crop (no pad).
            dict(type='LoadImage'),
            dict(type='ProcessImage',
                 image_processor=_base_.image_processor),
            dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
                 template='plain', max_length=_base_.max_length,
                 num_image_tokens=_base_.num_image_tokens),
            dict(type='PackLLaVAInputs'),
        ]),
)
