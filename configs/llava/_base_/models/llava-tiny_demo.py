# The embedded demo: LLaVA-1.5's design at toy size. A small CLIP vision
# tower (48 px, 16 px patches: one patch per cell of the scenes' 3 x 3 grid)
# pretrained with CLIP's contrastive objective on the training captions, and
# a small Llama that first learned the demo's language (tools/run_demo.py
# makes both, with the real LLaMA-format tokenizer from the mistral-common
# wheel), loaded like real checkpoints. Sized to make everything and train
# both stages in a few minutes on 2 CPU cores (see docs/get_started.md).
demo_root = 'checkpoints/demo/'
vision_encoder_path = demo_root + 'vision_encoder'
llm_path = demo_root + 'llm'
tokenizer_path = demo_root + 'tokenizer'

# Truncation counts an image as (48 / 16) ** 2 = 9 rows (CLS dropped),
# derived from the tower's config.json when the run starts.
max_length = 512
image_mean = (0.48145466, 0.4578275, 0.40821073)

# How tools/run_demo.py makes the weights and the data.
demo = dict(
    data_dir='data/demo',
    num_train=2000,
    num_eval=200,
    image_size=48,
    tokenizer_dir=tokenizer_path,
    vision_encoder_dir=vision_encoder_path,
    vision_config=dict(
        hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, image_size=48, patch_size=16),
    # CLIP's contrastive pretraining of the tower on the training scenes'
    # captions, with a small text tower that is then thrown away.
    vision_pretrain=dict(
        text_config=dict(hidden_size=128, intermediate_size=512,
                         num_hidden_layers=2, num_attention_heads=4),
        steps=300, batch_size=128, lr=1e-3),
    image_processor=dict(
        size=dict(shortest_edge=48), crop_size=dict(height=48, width=48),
        image_mean=list(image_mean),
        image_std=[0.26862954, 0.26130258, 0.27577711]),
    llm_dir=llm_path,
    llm_config=dict(
        model_type='llama', vocab_size=32000, hidden_size=128,
        intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=1024,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2),
    lm_pretrain=dict(steps=200, seq_len=128, batch_size=4, lr=2e-3),
)

tokenizer = dict(type='PretrainedTokenizer', pretrained=tokenizer_path,
                 padding_side='right')
image_processor = dict(pretrained=vision_encoder_path)

model = dict(
    type='LLaVA',
    vision_encoder=dict(
        type='CLIPVisionEncoder', pretrained=vision_encoder_path,
        select_layer=-2, select_feature='patch'),
    projector=dict(type='mlp2x_gelu'),
    llm=dict(type='HFCausalLM', pretrained=llm_path),
    tokenizer=tokenizer,
    template='vicuna_v1',
    freeze_vision_encoder=True,
    generation_cfg=dict(max_new_tokens=48, do_sample=False),
)

# Answering (validation, test, inference): prompts rendered with `vicuna_v1`,
# images padded to squares as in stage 2.
eval_meta_keys = ('sample_id', 'question_id', 'image_id', 'img_path',
                  'prompt', 'category', 'gt_answer', 'gt_answers',
                  'num_choices')
test_pipeline = [
    dict(type='LoadImage'),
    dict(type='ProcessImage', image_processor=image_processor,
         pad_to_square=image_mean),
    dict(type='TokenizeConversation', tokenizer=tokenizer,
         template='vicuna_v1', mode='predict'),
    dict(type='PackLLaVAInputs', meta_keys=eval_meta_keys),
]
