# LLaVA-1.5-7B stage 1, feature alignment: only the projector learns, on
# LCS-558K captions with the `plain` template. 8 GPUs x 32 = global batch 256.
_base_ = [
    './_base_/datasets/llava-1.5_lcs558k.py',
    './_base_/schedules/pretrain_1e.py',
    './_base_/default_runtime.py',
]

model = dict(freeze_llm=True, template='plain')
