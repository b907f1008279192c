# Demo evaluation: held-out scenes answered greedily with `vicuna_v1`, images
# padded to squares as in stage 2.
_base_ = ['../models/llava-tiny_demo.py']

eval_meta_keys = ('sample_id', 'question_id', 'image_id', 'img_path',
                  'prompt', 'category', 'gt_answer', 'gt_answers',
                  'num_choices')
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='PadToSquare', mean=_base_.image_mean),
    dict(type='ProcessImage', image_processor=_base_.image_processor),
    dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
         template='vicuna_v1', mode='predict'),
    dict(type='PackLLaVAInputs', meta_keys=eval_meta_keys),
]
test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
)
test_cfg = dict(type='TestLoop')
eval_root = 'data/demo/eval/'
