# Demo stage 2, instruction tuning: projector and LLM learn on the generated
# conversations, descriptions and reasoning (plus text-only samples) with the
# `vicuna_v1` template; images padded to squares; batches grouped by modality
# and length.
_base_ = [
    './_base_/models/llava-tiny_demo.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='vicuna_v1',
    projector_pretrained='work_dirs/llava-tiny_demo_pretrain')
# The recipe's 2e-5 suits a 7B LLM at batch 128; the toy LLM at batch 16
# learns at a larger rate.
optim_wrapper = dict(optimizer=dict(lr=5e-4))

batch_size = 16
data_root = 'data/demo/'
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='LengthGroupedSampler', batch_size=batch_size,
                 mega_batch_mult=8),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVADataset',
        data_file=data_root + 'instruct.json',
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

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100000, max_keep_ckpts=1))
