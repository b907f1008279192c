# Demo stage 1, feature alignment: only the projector learns, on the
# generated scene captions with the `plain` template. Runs on 2 CPU cores.
_base_ = [
    './_base_/models/llava-tiny_demo.py',
    './_base_/schedules/pretrain_1e.py',
    './_base_/default_runtime.py',
]

model = dict(freeze_llm=True, template='plain')
train_cfg = dict(max_epochs=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=0.06, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0.06,
         end=3, convert_to_iter_based=True),
]

data_root = 'data/demo/'
train_dataloader = dict(
    batch_size=16,
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
                 template='plain', max_length=_base_.max_length,
                 num_image_tokens=_base_.num_image_tokens),
            dict(type='PackLLaVAInputs'),
        ]),
)

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100000, max_keep_ckpts=1))
