# LLaVA-1.5-7B on SEED-Bench, image questions (the papers' SEED number):
# accuracy per evaluation dimension and in total, the letter compared exactly
# as LLaVA's convert_seed_for_submission.py does.
_base_ = [
    './_base_/datasets/llava-1.5_choice_eval.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/seed_bench/'
test_dataloader = dict(
    dataset=dict(
        type='SEEDBenchDataset',
        data_file=data_root + 'SEED-Bench.json',
        image_folder=data_root + 'SEED-Bench-image',
        data_type='image'))
test_evaluator = dict(type='MultipleChoiceAccuracy', match='exact',
                      prefix='seed')
