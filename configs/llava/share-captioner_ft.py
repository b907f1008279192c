# A Share-Captioner on LLaVA-1.5-7B: LLaVA-1.5's stage 2 (llava-1.5-7b_ft.py:
# from the LLaVA-1.5 stage-1 projector, the projector and the LLM learn, lr
# 2e-5, global batch 128, 1 epoch) on the 100K GPT-4V captions alone.
# The official Share-Captioner fine-tunes InternLM-XComposer-7B at 448 px and
# its training recipe is not published (see docs/sharegpt4v.md); this one
# keeps LLaVA-1.5's architecture so that the captioner captions with
# tools/data/caption_images.py --local-model llava-1.5-7b_caption.
_base_ = ['./llava-1.5-7b_ft.py']

data_root = 'data/ShareGPT4V/'
train_dataloader = dict(
    dataset=dict(
        data_file=data_root +
        'sharegpt4v/sharegpt4v_instruct_gpt4-vision_cap100k.json',
        image_folder=data_root))
