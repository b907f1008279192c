# LLaVA-1.5-7B on Q-Bench A1 (LLVisionQA) dev: the prompt of LLaVA's
# model_vqa_qbench.py; the letter (or option text) read as MMBench's evaluator
# reads it, a judge model for the rest when `judge` is set (see the MMBench
# config). Accuracy per question type. Not the Q-Bench papers' number: theirs
# is the authors' own GPT-assisted scoring of submitted answers, which is not
# public (see docs/evaluation.md).
_base_ = [
    './_base_/datasets/llava-1.5_choice_eval.py',
    './_base_/default_runtime.py',
]

inference = dict(task='vqa', prompt_suffix='')
data_root = 'data/eval/qbench/'
test_dataloader = dict(
    dataset=dict(
        type='QBenchDataset',
        data_file=data_root + 'llvisionqa_dev.json',
        image_folder=data_root + 'images_llvisionqa'))
test_evaluator = dict(type='MultipleChoiceAccuracy', match='mmbench',
                      prefix='qbench')
