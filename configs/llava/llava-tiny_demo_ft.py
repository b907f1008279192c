# Demo stage 2, instruction tuning: projector and LLM learn on the generated
# instruction data with the `vicuna_v1` template, from the stage-1 projector.
_base_ = [
    './_base_/datasets/llava-tiny_demo_instruct.py',
    './_base_/schedules/finetune_1e.py',
    './_base_/default_runtime.py',
]

model = dict(
    freeze_llm=False,
    template='vicuna_v1',
    projector_pretrained='work_dirs/llava-tiny_demo_pretrain')
# The recipe's 2e-5 at batch 128 suits a 7B LLM; the toy LLM learns fastest
# (per CPU second) with more, smaller steps at a larger rate.
optim_wrapper = dict(optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(interval=10),
    # A checkpoint at the end of every epoch: a stopped demo resumes there
    # (tools/run_demo.py --resume).
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=1))

# Watching it learn: every 400 iterations, exact match on 48 held-out
# questions, the held-out loss with own, shuffled and blank images per
# question kind (val/image_gain), and three fixed questions answered into
# the log.
short_answer_prompt = '\nAnswer the question using a single word or phrase.'
train_cfg = dict(val_iter_interval=400)
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='LLaVAQuestionDataset',
        question_file='data/demo/eval/questions.jsonl',
        image_folder='data/demo/',
        prompt_suffix=short_answer_prompt,
        indices=48,
        pipeline=_base_.test_pipeline))
val_evaluator = dict(type='ExactMatchAccuracy', prefix='val')
val_cfg = dict(type='ValLoop')
custom_hooks = [
    dict(type='NonFiniteLossHook'),
    dict(type='ImageGainHook', data_file='data/demo/eval.json',
         image_folder='data/demo/',
         pipeline=_base_.train_dataloader.dataset.pipeline,
         max_samples=200, batch_size=25, interval=400, at_start=True),
    dict(type='SampleAnswersHook', pipeline=_base_.test_pipeline,
         interval=400, max_new_tokens=24,
         samples=[
             dict(image='data/demo/images/eval_00000.png',
                  question='What do you see in the image?'),
             dict(image='data/demo/images/eval_00001.png',
                  question='What colour is the largest shape?'
                  + short_answer_prompt),
             dict(image=None, question='What is a triangle?'),
         ]),
]
