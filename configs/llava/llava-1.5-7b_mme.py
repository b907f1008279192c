# LLaVA-1.5-7B on MME: perception and cognition scores (acc + acc+ per
# subtask).
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/MME/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'llava_mme.jsonl',
        image_folder=data_root + 'MME_Benchmark_release_version',
        ground_truth=dict(format='mme',
                          file=data_root + 'MME_Benchmark_release_version'),
        # LLaVA's question file repeats question ids (an image id for
        # TextVQA, the image path for MME); answers keep them as given.
        allow_duplicate_ids=True))
test_evaluator = dict(type='MMEMetric')
