# LLaVA v1 evaluation: as LLaVA-1.5's, with the v1 model (224 px images,
# resized and centre-cropped without padding, as LLaVA v1 trained).
_base_ = ['../models/llava-v1_clip-vit-l-224px_vicuna-7b.py']

eval_meta_keys = ('sample_id', 'question_id', 'image_id', 'img_path',
                  'prompt', 'category', 'gt_answer', 'gt_answers',
                  'num_choices')
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='ProcessImage', image_processor=_base_.image_processor),
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
model = dict(generation_cfg=dict(max_new_tokens=128, do_sample=False))
