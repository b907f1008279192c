# LLaVA-NeXT, the 2024-05 family (the ablation blog of 2024-05-25 and its
# scripts): SigLIP-SO400M/14 at 384 px, a 2-layer MLP projector, Qwen1.5-0.5B
# chat, the `qwen_1_5` (ChatML) template, AnyRes tiles merged `spatial_unpad`.
# Weights come from local folders (google/siglip-so400m-patch14-384,
# Qwen/Qwen1.5-0.5B-Chat, as in the official scripts).
vision_encoder_path = 'checkpoints/siglip-so400m-patch14-384'
llm_path = 'checkpoints/Qwen1.5-0.5B-Chat'

# (384 / 14) ** 2 = 27 x 27 patches per 384-px tile; SigLIP has no CLS token.
# The tile side, which AnyRes grids are multiples of.
tile_size = 384
# The official model_max_length of stages 1.5 and 2 (stage 1: 8192).
max_length = 32768
# AnyRes grids of the official SigLIP-384 recipes, 1x2, 2x1, 2x2, 1x3 and 3x1
# tiles (scripts/train/finetune_siglip.sh and the Qwen-1.5 scripts of
# 2024-05: "[(384, 768), (768, 384), (768, 768), (1152, 384), (384, 1152)]",
# written (width, height) there). Here (height, width), as everywhere in
# mmllava; the model and the data pipeline both read this list.
image_grid_pinpoints = [(768, 384), (384, 768), (768, 768), (384, 1152),
                        (1152, 384)]

# Qwen1.5 chat: no BOS, eos <|im_end|>, pad <|endoftext|>.
tokenizer = dict(
    type='PretrainedTokenizer', pretrained=llm_path,
    model_max_length=max_length, padding_side='right')
image_processor = dict(pretrained=vision_encoder_path)

model = dict(
    type='LLaVA',
    # LLaVA-NeXT deletes SigLIP's last layer and head and takes the last
    # hidden state: the penultimate layer of the full tower.
    vision_encoder=dict(
        type='SiglipVisionEncoder', pretrained=vision_encoder_path,
        select_layer=-2, select_feature='patch'),
    projector=dict(type='mlp2x_gelu'),
    # Qwen1.5-0.5B ties its input and output embeddings.
    llm=dict(type='HFCausalLM', pretrained=llm_path, torch_dtype='bfloat16',
             attn_implementation='sdpa', gradient_checkpointing=True),
    tokenizer=tokenizer,
    template='qwen_1_5',
    image_aspect_ratio='anyres',
    image_grid_pinpoints=image_grid_pinpoints,
    mm_patch_merge_type='spatial_unpad',
    # Stages 1.5 and 2 train everything (mm_tunable_parts="mm_vision_tower,
    # mm_mlp_adapter,mm_language_model"); stage 1 freezes all but the
    # projector.
    freeze_vision_encoder=False,
    freeze_llm=False,
    data_preprocessor=dict(type='LLaVADataPreprocessor',
                           pixel_dtype='bfloat16'),
)
