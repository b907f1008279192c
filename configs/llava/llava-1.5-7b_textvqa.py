# LLaVA-1.5-7B on TextVQA val (with the OCR-token prompt of LLaVA's question
# file): VQA accuracy against the 10 human answers.
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

data_root = 'data/eval/textvqa/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'llava_textvqa_val_v051_ocr.jsonl',
        image_folder=data_root + 'train_images',
        ground_truth=dict(format='textvqa',
                          file=data_root + 'TextVQA_0.5.1_val.json'),
        # LLaVA's question file repeats question ids (an image id for
        # TextVQA, the image path for MME); answers keep them as given.
        allow_duplicate_ids=True))
test_evaluator = dict(type='VQAAccuracy')
