# LLaVA-1.5-7B on VizWiz-VQA test: answers for the evaluation server (the
# question file's texts carry the prompt for unanswerable questions).
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/vizwiz/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'llava_test.jsonl',
        image_folder=data_root + 'test'))
test_evaluator = dict(type='VQAAccuracy')
