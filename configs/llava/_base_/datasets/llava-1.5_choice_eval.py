# LLaVA-1.5 on the json benchmarks (SEED-Bench, Q-Bench, MM-Vet): as the
# question files, with the fields their metrics read carried to the samples.
_base_ = ['./llava-1.5_eval.py']

test_pipeline = [
    *_base_.test_pipeline[:-1],
    dict(type='PackLLaVAInputs',
         meta_keys=(*_base_.eval_meta_keys, 'options', 'question',
                    'capability', 'concern')),
]
letter_prompt = \
    "\nAnswer with the option's letter from the given choices directly."
inference = dict(task='vqa', prompt_suffix=letter_prompt)
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
