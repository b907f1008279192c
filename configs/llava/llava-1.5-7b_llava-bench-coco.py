# LLaVA-1.5-7B on LLaVA-Bench (COCO): 90 questions on 30 COCO val2014
# images; answers for tools/eval/gpt_review.py as in
# llava-1.5-7b_llava-bench-in-the-wild.py (--questions qa90_questions.jsonl
# --contexts caps_boxes_coco2014_val_80.jsonl --references
# qa90_gpt4_answer.jsonl).
_base_ = ['./llava-1.5-7b_llava-bench-in-the-wild.py']

data_root = 'data/eval/llava-bench-coco/'
test_dataloader = dict(
    dataset=dict(
        question_file=data_root + 'qa90_questions.jsonl',
        image_folder='data/coco/val2014'))
