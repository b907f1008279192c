# LLaVA-1.5 on a LLaVA evaluation question file (the VQA-style benchmarks).
# LLaVA's question files already end each text with the benchmark's answer
# prompt, so the dataset adds nothing; inference_model adds the short-answer
# prompt to a user's own question.
_base_ = ['./llava-1.5_eval.py']

short_answer_prompt = '\nAnswer the question using a single word or phrase.'
inference = dict(task='vqa', prompt_suffix=short_answer_prompt)
test_dataloader = dict(
    dataset=dict(type='LLaVAQuestionDataset', pipeline=_base_.test_pipeline))
