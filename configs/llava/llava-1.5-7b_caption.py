# LLaVA-1.5-7B on COCO captioning, Karpathy test split (5,000 images):
# BLEU-1..4, METEOR, ROUGE-L, CIDEr with pycocoevalcap. The prompt is the one
# LLaVA-1.5's instruction mix uses for its caption data.
_base_ = [
    './_base_/datasets/llava-1.5_eval.py',
    './_base_/default_runtime.py',
]

caption_prompt = 'Provide a one-sentence caption for the provided image.'
inference = dict(task='caption', prompt=caption_prompt)
data_root = 'data/coco/'
test_dataloader = dict(
    dataset=dict(
        type='COCOKarpathyCaptionDataset',
        data_file=data_root + 'annotations/coco_karpathy_test.json',
        image_folder=data_root,
        prompt=caption_prompt,
        pipeline=_base_.test_pipeline))
test_evaluator = dict(
    type='COCOCaptionMetric',
    ann_file=data_root + 'annotations/coco_karpathy_test_gt.json')
# Captions are one sentence.
model = dict(generation_cfg=dict(max_new_tokens=64))
