# LLaVA-NeXT Mistral-7B (LLaVA-1.6-Mistral-7B, 2024-01) stage 1, feature
# alignment: LLaVA-1.5's stage 1 (LCS-558K captions, `plain` template, only
# the projector learns) with Mistral-7B-Instruct-v0.2 as the LLM, since a
# projector aligned to Vicuna does not fit Mistral's embedding space.
_base_ = ['./llava-1.5-7b_pretrain.py']

llm_path = 'checkpoints/Mistral-7B-Instruct-v0.2'
tokenizer = dict(
    type='PretrainedTokenizer', pretrained=llm_path,
    model_max_length=_base_.max_length, padding_side='right')

model = dict(llm=dict(pretrained=llm_path), tokenizer=tokenizer)
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='ProcessImage', image_processor=_base_.image_processor),
    dict(type='TokenizeConversation', tokenizer=tokenizer, template='plain',
         max_length=_base_.max_length),
    dict(type='PackLLaVAInputs'),
]))
