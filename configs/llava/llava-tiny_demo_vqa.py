# The demo model on held-out scene questions (short answers): exact-match
# accuracy, overall and per question kind.
_base_ = [
    './_base_/datasets/llava-tiny_demo_eval.py',
    './_base_/default_runtime.py',
]

short_answer_prompt = '\nAnswer the question using a single word or phrase.'
inference = dict(task='vqa', prompt_suffix=short_answer_prompt)
test_dataloader = dict(
    dataset=dict(
        type='LLaVAQuestionDataset',
        question_file=_base_.eval_root + 'questions.jsonl',
        image_folder='data/demo/',
        prompt_suffix=short_answer_prompt,
        pipeline=_base_.test_pipeline))
test_evaluator = dict(type='ExactMatchAccuracy', prefix='demo-vqa')
