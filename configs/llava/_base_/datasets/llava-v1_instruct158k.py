# LLaVA v1 stage-2 data: LLaVA-Instruct-158K on COCO train2017, `vicuna_v1`
# template, the processor's resize and centre crop.
_base_ = ['./llava-v1_cc595k.py']

train_dataloader = _base_.train_dataloader
train_dataloader.batch_size = 4
train_dataloader.dataset.data_file = \
    'data/LLaVA-Instruct-150K/llava_instruct_158k.json'
train_dataloader.dataset.image_folder = 'data/coco/train2017'
train_dataloader.dataset.pipeline[-2].template = 'vicuna_v1'
