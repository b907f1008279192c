# LLaVA-OneVision SigLIP-SO400M + Qwen2-0.5B, the single-image stage (stage
# 2 "si", 2024-08): LLaVA-NeXT 2024-05's SigLIP + Qwen recipe with more
# grids and a token budget. The official finetune_si.sh: Qwen2 instruct,
# `--image_aspect_ratio anyres_max_9 --image_grid_pinpoints "(1x1),...,(6x6)"
# --mm_patch_merge_type spatial_unpad`, lr 1e-5, vision tower lr 2e-6,
# 1 epoch, cosine after 3% warmup, model_max_length 32768, 1 sample per GPU
# with 2 accumulation steps. What differs from its base, the LLaVA-NeXT
# SigLIP + Qwen1.5 stage 2, is below; see docs/high_resolution.md
# (anyres_max_N, what is not reproduced) and docs/siglip_qwen.md (labels).
_base_ = ['./llava-next-siglip-so400m-qwen1.5-0.5b_ft.py']

llm_path = 'checkpoints/Qwen2-0.5B-Instruct'
# "(1x1),...,(6x6)": every grid of 1 to 6 tiles a side, 36 pinpoints from
# 384x384 to 2304x2304, in the order the official code expands the range
# (its pairs are (width, height), the columns the outer loop); (height,
# width) here, as everywhere in mmllava.
image_grid_pinpoints = [(rows * _base_.tile_size, columns * _base_.tile_size)
                        for columns in range(1, 7) for rows in range(1, 7)]
# anyres_max_9: an unpadded grid of more than about 9 tiles' features
# (a side over 1.1 x that of 9 x 729 rows) shrinks by bilinear
# interpolation: an image costs at most 8,765 LLM rows, base view and
# newlines included, where a 2304-px square would cost 27,135 on its 6x6
# grid.
anyres_max = 9
tokenizer = dict(_base_.tokenizer, pretrained=llm_path)

model = dict(llm=dict(pretrained=llm_path), tokenizer=tokenizer,
             image_grid_pinpoints=image_grid_pinpoints,
             anyres_max=anyres_max)

# The single-image data of LLaVA-OneVision (lmms-lab/LLaVA-OneVision-Data,
# 3.2M samples, released per source as parquet): written out as one LLaVA
# json and its images. The later "ov" stage also trains on multi-image and
# video samples, which mmllava's model does not take.
data_root = 'data/LLaVA-OneVision-Data/'
train_dataloader = dict(
    batch_size=1,
    sampler=dict(batch_size=1),
    dataset=dict(
        data_file=data_root + 'llava_onevision_si.json',
        image_folder=data_root + 'images',
        pipeline=[
            dict(type='LoadImage'),
            dict(type='AnyResImage', image_processor=_base_.image_processor,
                 grid_pinpoints=image_grid_pinpoints),
            dict(type='TokenizeConversation', tokenizer=tokenizer,
                 template='qwen_1_5', max_length=_base_.max_length),
            dict(type='PackLLaVAInputs'),
        ]))
optim_wrapper = dict(accumulative_counts=2)
# 1 sample x 2 accumulation steps x 8 GPUs.
auto_scale_lr = dict(base_batch_size=16)

# Every weight starts from the mid-stage (stage 1.5) model of this tower
# and LLM (the LLaVA-NeXT SigLIP stages 1 and 1.5 with Qwen2-0.5B-Instruct
# as llm_path): its work dir stands for its latest checkpoint.
load_from = 'work_dirs/llava-onevision-siglip-so400m-qwen2-0.5b_stage1.5'
