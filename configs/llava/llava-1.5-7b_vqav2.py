# LLaVA-1.5-7B on VQAv2 test-dev: answers for the evaluation server (no
# local ground truth). Data in LLaVA's layout; the question file's texts
# already end with the short-answer prompt. For a local score on val, point
# question_file at a val question file and add
# ground_truth=dict(format='vqav2', file=.../v2_mscoco_val2014_annotations.json).
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/vqav2/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'llava_vqav2_mscoco_test-dev2015.jsonl',
        image_folder=data_root + 'test2015'))
test_evaluator = dict(type='VQAAccuracy')
