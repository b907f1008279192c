"""Answer the demo's held-out questions with a trained model and draw a few
answers beside their images."""
import json
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import load_checkpoint
from PIL import Image

from mmllava.registry import DATASETS, MODELS
from mmllava.utils.files import latest_checkpoint


def load_trained_model(config: Config, work_dir: str) -> torch.nn.Module:
    """Build ``config.model`` and load the work dir's latest checkpoint."""
    model_cfg = config.model.copy()
    model_cfg.pop('projector_pretrained', None)
    model = MODELS.build(model_cfg)
    load_checkpoint(model, latest_checkpoint(work_dir), map_location='cpu',
                    strict=True, logger='silent')
    return model.eval()


def predict_eval_set(config: Config, work_dir: str, eval_file: str,
                     image_folder: str, max_samples: int = 96,
                     batch_size: int = 16) -> list[dict]:
    """Generate answers for the first ``max_samples`` short-answer records.

    Returns:
        list[dict]: ``question``, ``answer``, ``prediction``, ``img_path``
        and ``correct`` (case-insensitive exact match) per record.
    """
    model = load_trained_model(config, work_dir)
    all_records = json.loads(Path(eval_file).read_text())
    indices = [index for index, record in enumerate(all_records)
               if record.get('type') != 'caption'][:max_samples]
    records = [all_records[index] for index in indices]
    pipeline = [
        dict(type='LoadImage'),
        dict(type='PadToSquare', mean=config.image_mean),
        dict(type='ProcessImage', image_processor=config.image_processor),
        dict(type='TokenizeConversation', tokenizer=config.tokenizer,
             template=config.model.template, mode='predict'),
        dict(type='PackLLaVAInputs'),
    ]
    dataset = DATASETS.build(dict(
        type='LLaVADataset', data_file=eval_file, image_folder=image_folder,
        pipeline=pipeline, indices=indices))
    results = []
    for start in range(0, len(dataset), batch_size):
        batch = pseudo_collate(
            [dataset[index] for index in
             range(start, min(start + batch_size, len(dataset)))])
        with torch.no_grad():
            samples = model(**model.data_preprocessor(batch), mode='predict')
        for sample in samples:
            record = records[len(results)]
            prediction = sample.pred_text
            question = record['conversations'][0]['value']
            results.append(dict(
                question=question.replace('<image>', '').strip()
                .split('\n')[0],
                answer=record['answer'], prediction=prediction,
                img_path=sample.img_path,
                correct=prediction.strip().lower() ==
                record['answer'].strip().lower()))
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
