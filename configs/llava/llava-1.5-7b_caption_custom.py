# LLaVA-1.5-7B on your own captions: any LLaVA caption json (one human turn,
# one gpt turn per record), a json/jsonl of {"image", "caption"} records, or
# a folder with captions.json / captions.jsonl / metadata.jsonl and the
# images. No COCO file names or ground-truth json: the references are read
# from the file. BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap, x100).
#   python tools/test.py configs/llava/llava-1.5-7b_caption_custom.py CKPT \
#       --cfg-options test_dataloader.dataset.data_file=data/my_captions.json
_base_ = [
    './_base_/datasets/llava-1.5_eval.py',
    './_base_/default_runtime.py',
]

caption_prompt = 'Provide a one-sentence caption for the provided image.'
inference = dict(task='caption', prompt=caption_prompt)
test_pipeline = [
    *_base_.test_pipeline[:-1],
    dict(type='PackLLaVAInputs',
         meta_keys=(*_base_.eval_meta_keys, 'gt_captions', 'image')),
]
test_dataloader = dict(
    dataset=dict(
        type='CaptionDataset',
        data_file='data/captions/captions.json',
        prompt=caption_prompt,
        pipeline=test_pipeline))
test_evaluator = dict(type='COCOCaptionMetric', ann_file=None)
model = dict(generation_cfg=dict(max_new_tokens=64))
