# LLaVA-NeXT stage 1.5, high-quality knowledge: detailed re-captions and
# document / OCR data, `qwen_1_5` template, AnyRes images.
# - Re-captioned detailed descriptions (LLaVA-ReCap-558K / -118K (COCO) /
#   -CC3M, written by LLaVA-NeXT-34B), every question the same prompt
#   "<image>\nPlease generate detailed descriptions of the given image.";
#   file names as in the official mid-stage list
#   (scripts/train/mid_stage.yaml).
# - Document / OCR: UReader text reading and SynthDoG-EN 100K
#   (lmms-lab/LLaVA-OneVision-Mid-Data).
# The official mid stage of LLaVA-OneVision also mixes Chinese (SynthDoG-ZH,
# an unreleased 92K Azure caption set) and text-only Evol-Instruct data; this
# recipe keeps the two kinds of knowledge data the 2024-05 blog describes.
_base_ = ['../models/llava-next_siglip-so400m-384px_qwen1.5-0.5b.py']

data_root = 'data/LLaVA-Stage1.5/'
pipeline = [
    dict(type='LoadImage'),
    dict(type='AnyResImage', image_processor=_base_.image_processor,
         grid_pinpoints=_base_.image_grid_pinpoints),
    dict(type='TokenizeConversation', tokenizer=_base_.tokenizer,
         template='qwen_1_5', max_length=_base_.max_length),
    dict(type='PackLLaVAInputs'),
]

train_dataloader = dict(
    # The official stage-1.5 script: 1 sample per GPU, no accumulation.
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(type='LLaVADataset',
             data_file=data_root + 'blip558k_stage1.5_finetune_w_prompt.json',
             image_folder=data_root + 'blip_558k', pipeline=pipeline),
        dict(type='LLaVADataset',
             data_file=data_root + 'coco118k_stage1.5_finetune_w_prompt.json',
             image_folder=data_root + 'coco', pipeline=pipeline),
        dict(type='LLaVADataset',
             data_file=data_root + 'cc3m_recap_data_prompt_v2.json',
             image_folder=data_root + 'cc3m', pipeline=pipeline),
        dict(type='LLaVADataset',
             data_file=data_root + 'ureader_tr_sft.json',
             image_folder=data_root + 'ureader', pipeline=pipeline),
        dict(type='LLaVADataset',
             data_file=data_root + 'synthdog_en_100k.json',
             image_folder=data_root + 'synthdog_en', pipeline=pipeline),
    ]),
)
