# LLaVA-1.5-13B stage 1: the 7B recipe with Vicuna-13B v1.5.
_base_ = ['./llava-1.5-7b_pretrain.py']

llm_path = 'checkpoints/vicuna-13b-v1.5'
model = dict(llm=dict(pretrained=llm_path), tokenizer=dict(pretrained=llm_path))
# The data pipeline tokenizes with the same model's tokenizer.
_base_.train_dataloader.dataset.pipeline[-2].tokenizer.pretrained = llm_path
train_dataloader = _base_.train_dataloader
