# LLaVA-1.5-7B on MM-Vet: open answers (up to 1024 tokens, as LLaVA's
# model_vqa), graded by a judge model with MM-Vet's official prompt (the
# paper's grader is gpt-4-0613). Set the judge, e.g.
#   --cfg-options test_evaluator.judge.base_url=https://api.openai.com/v1
#     test_evaluator.judge.model=gpt-4-0613
#     test_evaluator.judge.cache_file=work_dirs/mmvet_judge.jsonl
# Without one, only the results json for MM-Vet's own grader is written.
_base_ = [
    './_base_/datasets/llava-1.5_choice_eval.py',
    './_base_/default_runtime.py',
]

inference = dict(task='vqa', prompt_suffix='')
data_root = 'data/eval/mm-vet/'
test_dataloader = dict(
    dataset=dict(
        type='MMVetDataset',
        data_file=data_root + 'mm-vet.json',
        image_folder=data_root + 'images'))
test_evaluator = dict(type='MMVetMetric',
                      results_file='work_dirs/mmvet_results.json')
model = dict(generation_cfg=dict(max_new_tokens=1024))
