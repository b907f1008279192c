# LLaVA v1 (7B) on COCO captioning, Karpathy test split: the prompt is one of
# the brief-description instructions LLaVA v1 was trained with.
_base_ = [
    './_base_/datasets/llava-v1_eval.py',
    './_base_/default_runtime.py',
]

caption_prompt = 'Describe the image concisely.'
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
model = dict(generation_cfg=dict(max_new_tokens=64))
