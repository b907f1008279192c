# LLaVA-1.5-7B on MMBench dev (English): circular accuracy, per category and
# ability level. Answers whose letter cannot be read go to a judge model when
# `judge` is set (the official evaluator uses GPT-3.5/4), e.g.
#   --cfg-options test_evaluator.judge.base_url=https://api.openai.com/v1
#     test_evaluator.judge.model=gpt-4o-mini
#     test_evaluator.judge.cache_file=work_dirs/mmbench_judge.jsonl
# Without one, they are wrong (the official `exact_matching` policy).
# For the test split, point data_file at mmbench_test_en_20231003.tsv and set
# submission=dict(data_file=..., out_file='work_dirs/mmbench_test.xlsx').
_base_ = [
    './_base_/datasets/llava-1.5_mmbench.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/mmbench/'
test_dataloader = dict(
    dataset=dict(data_file=data_root + 'mmbench_dev_20230712.tsv'))
test_evaluator = dict(type='MMBenchMetric')
