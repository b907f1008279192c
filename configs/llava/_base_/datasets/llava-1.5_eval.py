# LLaVA-1.5 evaluation: each question rendered with `vicuna_v1` and answered
# greedily, images padded to squares as in training, batches of 8 (answers do
# not depend on the batch: prompts are left-padded for generation).
_base_ = ['../models/llava-1.5_clip-vit-l-336px_vicuna-7b.py']

# What each sample carries to the metrics and the answer file.
eval_meta_keys = ('sample_id', 'question_id', 'image_id', 'img_path',
                  'prompt', 'category', 'gt_answer', 'gt_answers',
                  'num_choices')
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='ProcessImage', image_processor=_base_.image_processor,
         pad_to_square=_base_.image_mean),
    dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
         template='vicuna_v1', mode='predict'),
    dict(type='PackLLaVAInputs', meta_keys=eval_meta_keys),
]
test_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
)
test_cfg = dict(type='TestLoop')
# The official evaluation decodes greedily, up to 128 new tokens.
model = dict(generation_cfg=dict(max_new_tokens=128, do_sample=False))
