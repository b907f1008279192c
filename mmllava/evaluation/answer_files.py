"""Write every prediction of a test run to a file people can read or submit."""
import json
import uuid
from pathlib import Path
from typing import Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from mmllava.registry import METRICS

FORMATS = ('llava_jsonl', 'coco_captions')


@METRICS.register_module()
class AnswerFileWriter(BaseMetric):
    """Save the model's answers, in dataset order, scoring nothing.

    ``'llava_jsonl'`` writes LLaVA's answer file, one object per line:
    ``question_id``, ``prompt``, ``text`` (the answer), ``answer_id``,
    ``model_id`` and ``metadata`` (the reference answer and category when
    known), the input of the official conversion and submission scripts.
    ``'coco_captions'`` writes COCO's results json, ``[{"image_id",
    "caption"}]``, the input of the COCO caption server and pycocoevalcap.

    Results are gathered from every process in dataset order, without the
    samples the distributed sampler repeats to even out the ranks; rank 0
    writes the file.

    Args:
        out_file (str): Where to write; folders are created.
        file_format (str): ``'llava_jsonl'`` or ``'coco_captions'``.
        model_id (str): Written into each LLaVA answer. Defaults to
            ``'mmllava'``.
        collect_device (str): Device to gather results through.
        prefix (str, optional): mmengine metric prefix.
    """

    default_prefix = 'answers'

    def __init__(self,
                 out_file: str,
                 file_format: str = 'llava_jsonl',
                 model_id: str = 'mmllava',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        if file_format not in FORMATS:
            raise ValueError(f'file_format must be one of {FORMATS}, got '
                             f'{file_format!r}')
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.out_file = out_file
        self.file_format = file_format
        self.model_id = model_id

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            if self.file_format == 'coco_captions':
                self.results.append(dict(image_id=sample.get('image_id'),
                                         caption=sample.get('pred_text')))
                continue
            metadata = {key: sample.get(key) for key in
                        ('gt_answer', 'gt_answers', 'category')
                        if sample.get(key) is not None}
            question_id = sample.get('question_id', sample.get('sample_id'))
            # Derived, not random: a rerun, a resumed run or one with more
            # processes writes the same file. The prompt keeps apart the
            # questions of benchmarks that repeat ids (MME, TextVQA).
            answer_id = uuid.uuid5(
                uuid.NAMESPACE_URL,
                f'{self.model_id}/{question_id}/{sample.get("prompt")}').hex
            self.results.append(dict(
                question_id=question_id,
                prompt=sample.get('prompt'),
                text=sample.get('pred_text'),
                answer_id=answer_id,
                model_id=self.model_id,
                metadata=metadata))

    def compute_metrics(self, results: list) -> dict:
        path = Path(self.out_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, 'w', encoding='utf-8') as file:
            if self.file_format == 'coco_captions':
                json.dump(results, file, ensure_ascii=False)
            else:
                for result in results:
                    file.write(json.dumps(result, ensure_ascii=False) + '\n')
        print_log(f'{len(results)} answers written to {path}',
                  logger='current')
        return {}
