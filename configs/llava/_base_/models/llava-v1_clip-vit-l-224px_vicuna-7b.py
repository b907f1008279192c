# LLaVA v1: CLIP ViT-L/14 at 224 px (penultimate layer, patch features), a
# linear projector, Vicuna-7B v1.3. Weights come from local folders.
_base_ = ['./llava-1.5_clip-vit-l-336px_vicuna-7b.py']

# (224 / 14) ** 2 = 256 patches per image; CLS dropped.
vision_encoder_path = 'checkpoints/clip-vit-large-patch14'
llm_path = 'checkpoints/vicuna-7b-v1.3'

tokenizer = dict(pretrained=llm_path)
image_processor = dict(pretrained=vision_encoder_path)
model = dict(
    vision_encoder=dict(pretrained=vision_encoder_path),
    projector=dict(type='linear'),
    llm=dict(pretrained=llm_path),
    tokenizer=dict(pretrained=llm_path))
