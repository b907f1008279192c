# LLaVA-1.5 on MMBench's tsv (base64 images): every row (the official files
# hold each question once per rotation of its options) answered with the
# option letter, as LLaVA's model_vqa_mmbench.py --single-pred-prompt.
_base_ = ['./llava-1.5_eval.py']

mmbench_meta_keys = ('sample_id', 'question_id', 'prompt', 'category',
                     'l2_category', 'split', 'gt_answer', 'options',
                     'question')
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='ProcessImage', image_processor=_base_.image_processor,
         pad_to_square=_base_.image_mean),
    dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
         template='vicuna_v1', mode='predict'),
    dict(type='PackLLaVAInputs', meta_keys=mmbench_meta_keys),
]
letter_prompt = \
    "\nAnswer with the option's letter from the given choices directly."
inference = dict(task='vqa', prompt_suffix=letter_prompt)
test_dataloader = dict(
    dataset=dict(type='MMBenchDataset', lang='en', pipeline=test_pipeline))
