# LLaVA-NeXT Mistral-7B (LLaVA-1.6-Mistral-7B, 2024-01) stage 2, visual
# instruction tuning: LLaVA-NeXT Vicuna-7B's recipe (the whole model learns
# on the LLaVA-NeXT mix with AnyRes images, lr 2e-5, tower 2e-6, global
# batch 128, 1 epoch) with Mistral-7B-Instruct-v0.2 as the LLM and its
# `mistral_instruct` template ([INST] {question} [/INST] {answer} </s>), set
# on the model (generation) and in the pipeline (training) alike.
_base_ = ['./llava-next-vicuna-7b_ft.py']

llm_path = 'checkpoints/Mistral-7B-Instruct-v0.2'
template = 'mistral_instruct'
tokenizer = dict(
    type='PretrainedTokenizer', pretrained=llm_path,
    model_max_length=_base_.max_length, padding_side='right')

model = dict(
    llm=dict(pretrained=llm_path),
    tokenizer=tokenizer,
    template=template,
    # Stage 1 with the same LLM (llava-next-mistral-7b_pretrain.py).
    projector_pretrained='work_dirs/llava-next-mistral-7b_pretrain')
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='AnyResImage', image_processor=_base_.image_processor,
         grid_pinpoints=_base_.image_grid_pinpoints),
    dict(type='TokenizeConversation', tokenizer=tokenizer, template=template,
         max_length=_base_.max_length),
    dict(type='PackLLaVAInputs'),
]))
