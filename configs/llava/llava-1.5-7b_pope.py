# LLaVA-1.5-7B on POPE (object hallucination; adversarial, popular and
# random splits on COCO val2014): accuracy, precision, recall, F1, yes-ratio.
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/pope/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'llava_pope_test.jsonl',
        image_folder=data_root + 'val2014',
        ground_truth=dict(format='pope', file=data_root + 'coco')))
test_evaluator = dict(type='POPEMetric')
