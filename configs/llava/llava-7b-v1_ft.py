# LLaVA v1 (7B) stage 2: projector and LLM learn on LLaVA-Instruct-158K with
# the `vicuna_v1` template; lr 2e-5, 3 epochs, 8 GPUs x 4 = global batch 32.
_base_ = [
    './_base_/models/llava-v1_clip-vit-l-224px_vicuna-7b.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='vicuna_v1',
    projector_pretrained='work_dirs/llava-7b-v1_pretrain')
train_cfg = dict(max_epochs=3)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=0.09, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0.0, by_epoch=True, begin=0.09,
         end=3, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=32)

data_root = 'data/LLaVA-Instruct-150K/'
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVADataset',
        data_file=data_root + 'llava_instruct_158k.json',
        image_folder='data/coco/train2017',
        pipeline=[
            dict(type='LoadImage'),
            dict(type='ProcessImage',
                 image_processor=_base_.image_processor),
            dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
                 template='vicuna_v1', max_length=_base_.max_length,
                 num_image_tokens=_base_.num_image_tokens),
            dict(type='PackLLaVAInputs'),
        ]),
)
