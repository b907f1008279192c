# LLaVA-1.5-7B on ScienceQA-IMG test (the questions written by
# tools/data/convert_scienceqa.py): the option letter, answered directly as
# in LLaVA-1.5's evaluation; accuracy overall and per subject.
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

letter_prompt = \
    "\nAnswer with the option's letter from the given choices directly."
inference = dict(task='vqa', prompt_suffix=letter_prompt)
data_root = 'data/eval/scienceqa/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'scienceqa_test_questions.jsonl',
        image_folder=data_root + 'images/test',
        prompt_suffix=letter_prompt))
test_evaluator = dict(type='ScienceQAAccuracy')
