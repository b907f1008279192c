# LLaVA-1.5-7B on MMBench-CN dev: as llava-1.5-7b_mmbench.py, with the
# Chinese questions and LLaVA's Chinese letter prompt.
_base_ = ['./llava-1.5-7b_mmbench.py']

cn_letter_prompt = '\n请直接回答选项字母。'
inference = dict(task='vqa', prompt_suffix=cn_letter_prompt)
test_dataloader = dict(
    dataset=dict(data_file='data/eval/mmbench/mmbench_dev_cn_20231003.tsv',
                 lang='cn'))
test_evaluator = dict(prefix='mmbench-cn')
