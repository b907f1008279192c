# ShareGPT4V-PT: 1,246K detailed captions of COCO, LAION-CC-SBU and SAM
# images written by Share-Captioner, read as LLaVA-1.5's stage-1 data
# (`plain` template, no pad: the official script leaves image_aspect_ratio
# at 'square'). Laid out as the official docs/Data.md: the json files in
# sharegpt4v/, the images in their datasets' folders beside it
# (coco/train2017, llava/llava_pretrain/images, sam/images, ...).
_base_ = ['./llava-1.5_lcs558k.py']

data_root = 'data/ShareGPT4V/'
train_dataloader = dict(
    dataset=dict(
        data_file=data_root +
        'sharegpt4v/share-captioner_coco_lcs_sam_1246k_1107.json',
        image_folder=data_root))
