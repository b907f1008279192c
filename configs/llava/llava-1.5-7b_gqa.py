# LLaVA-1.5-7B on GQA test-dev balanced: exact-match accuracy.
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/gqa/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'llava_gqa_testdev_balanced.jsonl',
        image_folder=data_root + 'data/images',
        ground_truth=dict(
            format='gqa',
            file=data_root + 'data/testdev_balanced_questions.json')))
test_evaluator = dict(type='ExactMatchAccuracy')
