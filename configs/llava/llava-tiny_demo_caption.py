# The demo model on held-out scene captions: BLEU-1..4, METEOR, ROUGE-L and
# CIDEr against the scenes' reference captions (COCO layout, written by
# tools/run_demo.py).
_base_ = [
    './_base_/datasets/llava-tiny_demo_eval.py',
    './_base_/default_runtime.py',
]

caption_prompt = 'Provide a one-sentence caption for the provided image.'
inference = dict(task='caption', prompt=caption_prompt)
test_dataloader = dict(
    dataset=dict(
        type='COCOKarpathyCaptionDataset',
        data_file=_base_.eval_root + 'captions_karpathy_test.json',
        image_folder='data/demo/',
        prompt=caption_prompt,
        pipeline=_base_.test_pipeline))
test_evaluator = dict(
    type='COCOCaptionMetric',
    ann_file=_base_.eval_root + 'captions_karpathy_test_gt.json')
