# LLaVA-1.5: CLIP ViT-L/14 at 336 px (penultimate layer, patch features),
# a 2-layer MLP projector, Vicuna-7B v1.5. Weights come from local folders.
vision_encoder_path = 'checkpoints/clip-vit-large-patch14-336'
llm_path = 'checkpoints/vicuna-7b-v1.5'

# Truncation counts an image as (336 / 14) ** 2 = 576 rows (CLS dropped),
# derived from the tower's config.json when the run starts.
max_length = 2048
# CLIP's image mean: LLaVA-1.5 pads images to squares of this colour.
image_mean = (0.48145466, 0.4578275, 0.40821073)

tokenizer = dict(
    type='PretrainedTokenizer', pretrained=llm_path,
    model_max_length=max_length, padding_side='right')
image_processor = dict(pretrained=vision_encoder_path)

model = dict(
    type='LLaVA',
    vision_encoder=dict(
        type='CLIPVisionEncoder', pretrained=vision_encoder_path,
        select_layer=-2, select_feature='patch'),
    projector=dict(type='mlp2x_gelu'),
    llm=dict(type='HFCausalLM', pretrained=llm_path, torch_dtype='bfloat16',
             attn_implementation='sdpa', gradient_checkpointing=True),
    tokenizer=tokenizer,
    template='vicuna_v1',
    freeze_vision_encoder=True,
    freeze_llm=False,
    data_preprocessor=dict(type='LLaVADataPreprocessor',
                           pixel_dtype='bfloat16'),
)
