"""The demo's held-out scenes in the layouts of real benchmarks.

From ``eval.json`` (one caption and a few short-answer questions per
held-out scene) write what the test configs read:

- ``eval/captions_karpathy_test.json``: the Karpathy-split layout (a list of
  ``{"image", "caption": [...]}``);
- ``eval/captions_karpathy_test_gt.json``: its ground truth in COCO caption
  annotation format (``images`` and ``annotations``);
- ``eval/questions.jsonl``: LLaVA's evaluation question format
  (``question_id``, ``image``, ``text``, ``category``) with the reference
  ``answer``.
"""
import json
from pathlib import Path

from mmllava.constants import IMAGE_PLACEHOLDER
from mmllava.testing.demo.synthetic_scenes import SHORT_ANSWER_PROMPT


def image_id_of(image: str) -> int:
    """The int id in an image's file name (``images/eval_00012.png`` ->
    12), as COCO's ``COCO_val2014_000000391895.jpg`` -> 391895."""
    return int(Path(image).stem.split('_')[-1])


def question_text(record: dict) -> str:
    """The record's question without the image placeholder and without
    the short-answer prompt (the test config adds that)."""
    text = record['conversations'][0]['value'].replace(IMAGE_PLACEHOLDER, '')
    return text.replace(SHORT_ANSWER_PROMPT, '').strip()


def write_eval_files(eval_file: str, out_dir: str) -> dict:
    """Write the caption and question test files of ``eval_file``.

    Returns:
        dict: The paths written and the number of images and questions.
    """
    records = json.loads(Path(eval_file).read_text(encoding='utf-8'))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    captions = [record for record in records if record['type'] == 'caption']
    questions = [record for record in records if record['type'] != 'caption']
    karpathy = [dict(image=record['image'], caption=[record['answer']])
                for record in captions]
    ground_truth = dict(
        images=[dict(id=image_id_of(record['image']),
                     file_name=record['image']) for record in captions],
        annotations=[dict(id=index, image_id=image_id_of(record['image']),
                          caption=record['answer'])
                     for index, record in enumerate(captions)])
    paths = dict(
        captions=out / 'captions_karpathy_test.json',
        captions_gt=out / 'captions_karpathy_test_gt.json',
        questions=out / 'questions.jsonl')
    paths['captions'].write_text(json.dumps(karpathy, indent=1) + '\n')
    paths['captions_gt'].write_text(json.dumps(ground_truth, indent=1) + '\n')
    with open(paths['questions'], 'w', encoding='utf-8') as file:
        for record in questions:
            file.write(json.dumps(dict(
                question_id=record['question_id'], image=record['image'],
                text=question_text(record), category=record['type'],
                answer=record['answer'])) + '\n')
    return dict(**{name: str(path) for name, path in paths.items()},
                num_images=len(captions), num_questions=len(questions))
