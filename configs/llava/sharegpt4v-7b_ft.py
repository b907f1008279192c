# ShareGPT4V-7B stage 2, instruction tuning: LLaVA-1.5's stage 2 on the
# ShareGPT4V mix (the 665K mix with its 23K caption records replaced by
# GPT-4V captions), starting from the whole ShareGPT4V-PT model. The vision
# tower (its latter half as stage 1 left it) is frozen again; the projector
# and the LLM learn. The official slurm_finetune_7b.sh: lr 2e-5, 1 epoch,
# cosine after 3% warmup, no weight decay, 16 GPUs x 8 = global batch 128,
# `v1` template, padded images, batches grouped by modality: all as
# llava-1.5-7b_ft.py.
_base_ = ['./llava-1.5-7b_ft.py']

data_root = 'data/ShareGPT4V/'
train_dataloader = dict(
    dataset=dict(
        data_file=data_root + 'sharegpt4v/'
        'sharegpt4v_mix665k_cap23k_coco-ap9k_lcs3k_sam9k_div2k.json',
        image_folder=data_root))

# Every weight, the tower's included, comes from stage 1: its work dir stands
# for its latest checkpoint.
model = dict(projector_pretrained=None)
load_from = 'work_dirs/sharegpt4v-7b_pretrain'
