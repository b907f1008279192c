# LLaVA-1.5-7B on LLaVA-Bench (In-the-Wild): the model's answers (up to 1024
# tokens, as LLaVA's model_vqa), written to the answer file; the judge scores
# them against GPT-4's with tools/eval/gpt_review.py, which reports the
# relative score per category (conv, detail, complex) as the paper does:
#   python tools/eval/gpt_review.py \
#     --questions data/eval/llava-bench-in-the-wild/questions.jsonl \
#     --contexts data/eval/llava-bench-in-the-wild/context.jsonl \
#     --references data/eval/llava-bench-in-the-wild/answers_gpt4.jsonl \
#     --answers WORK_DIR/llava-1.5-7b_llava-bench-in-the-wild_answers.jsonl \
#     --base-url https://api.openai.com/v1 --model gpt-4-0314 --output ...
_base_ = [
    './_base_/datasets/llava-1.5_questions.py',
    './_base_/default_runtime.py',
]

inference = dict(task='vqa', prompt_suffix='')
data_root = 'data/eval/llava-bench-in-the-wild/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'questions.jsonl',
        image_folder=data_root + 'images'))
# Nothing to score here: tools/test.py adds the answer-file writer.
test_evaluator = []
model = dict(generation_cfg=dict(max_new_tokens=1024))
