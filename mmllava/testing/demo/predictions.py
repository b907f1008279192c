"""Read a test run's answers back beside their questions and images, and
draw a few answers beside their images."""
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from mmllava.datasets.records import read_records


def join_answers(answers_file: str, questions_file: str,
                 image_folder: str) -> list[dict]:
    """Each answer of ``tools/test.py`` with its question, reference, kind
    and image.

    Returns:
        list[dict]: ``question_id``, ``question``, ``kind``, ``answer`` (the
        reference), ``prediction``, ``img_path`` and ``correct``
        (case-insensitive exact match), in the answer file's order.
    """
    questions = {record['question_id']: record
                 for record in read_records(questions_file)}
    results = []
    for answer in read_records(answers_file):
        question = questions[answer['question_id']]
        prediction = answer['text']
        results.append(dict(
            question_id=answer['question_id'], question=question['text'],
            kind=question.get('category'), answer=question['answer'],
            prediction=prediction,
            img_path=str(Path(image_folder, question['image'])),
            correct=prediction.strip().lower() ==
            question['answer'].strip().lower()))
    return results


def draw_predictions(results: list[dict], out_file: str,
                     num_shown: int = 6) -> str:
    """Draw images beside their question, answer and prediction, one
    question per image."""
    first_per_image = {}
    for result in results:
        first_per_image.setdefault(result['img_path'], result)
    shown = list(first_per_image.values())[:num_shown]
    figure = Figure(figsize=(7, 1.6 * len(shown)))
    FigureCanvasAgg(figure)
    for row, result in enumerate(shown):
        image_axis = figure.add_subplot(len(shown), 2, 2 * row + 1)
        image_axis.imshow(Image.open(result['img_path']).convert('RGB'),
                          interpolation='nearest')
        image_axis.axis('off')
        text_axis = figure.add_subplot(len(shown), 2, 2 * row + 2)
        text_axis.axis('off')
        verdict = 'right' if result['correct'] else 'wrong'
        text_axis.text(
            0, 0.5,
            f'Q: {result["question"]}\nA: {result["answer"]}\n'
            f'model: {result["prediction"]} ({verdict})',
            va='center', fontsize=9, wrap=True,
            color='darkgreen' if result['correct'] else 'darkred')
    figure.tight_layout()
    figure.savefig(out_file, dpi=100)
    return out_file
