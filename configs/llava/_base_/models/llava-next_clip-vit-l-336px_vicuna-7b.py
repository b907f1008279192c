# LLaVA-NeXT (LLaVA-1.6, 2024-01) Vicuna-7B: CLIP ViT-L/14 at 336 px
# (penultimate layer, patch features), a 2-layer MLP projector, Vicuna-7B
# v1.5, AnyRes tiles merged `spatial_unpad`. Weights come from local folders.
vision_encoder_path = 'checkpoints/clip-vit-large-patch14-336'
llm_path = 'checkpoints/vicuna-7b-v1.5'

# (336 / 14) ** 2 = 24 x 24 patches per 336-px tile; CLS dropped.
# llava-v1.6 config.json: tokenizer_model_max_length 4096 (a square image
# alone takes 576 + 48 x 49 = 2928 rows).
max_length = 4096
# AnyRes grids of the 2024-01 release, 1x2, 2x1, 2x2, 1x3 and 3x1 tiles (its
# config.json: [[336, 672], [672, 336], [672, 672], [1008, 336],
# [336, 1008]], written (width, height) there). Here (height, width), as
# everywhere in mmllava; the model and the data pipeline both read this list.
image_grid_pinpoints = [(672, 336), (336, 672), (672, 672), (336, 1008),
                        (1008, 336)]
mm_patch_merge_type = 'spatial_unpad'

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
    image_aspect_ratio='anyres',
    image_grid_pinpoints=image_grid_pinpoints,
    mm_patch_merge_type=mm_patch_merge_type,
    # Stage 2 trains the whole model, the tower included.
    freeze_vision_encoder=False,
    freeze_llm=False,
    data_preprocessor=dict(type='LLaVADataPreprocessor',
                           pixel_dtype='bfloat16'),
)
