"""The demo's test-set report: the model beside its blind baseline."""
from typing import Optional

#: Metric keys of the demo test configs, with the names the report prints.
CAPTION_ROWS = (('caption BLEU-4', 'coco-caption/Bleu_4'),
                ('caption METEOR', 'coco-caption/METEOR'),
                ('caption ROUGE-L', 'coco-caption/ROUGE_L'),
                ('caption CIDEr', 'coco-caption/CIDEr'))
VQA_PREFIX = 'demo-vqa/'


def metric_rows(metrics: dict) -> list[tuple[str, str]]:
    """The caption rows, then VQA accuracy overall and per question kind."""
    kinds = sorted(key[len(VQA_PREFIX):-len('/accuracy')] for key in metrics
                   if key.startswith(VQA_PREFIX)
                   and key.endswith('/accuracy'))
    return [*CAPTION_ROWS, ('VQA exact match', VQA_PREFIX + 'accuracy'),
            *((f'  {kind}', f'{VQA_PREFIX}{kind}/accuracy')
              for kind in kinds)]


def comparison_table(model: dict, blind: dict) -> str:
    """Each metric of the model beside the blind baseline's, and the gap."""
    lines = [f'{"metric":<22}{"model":>9}{"blind":>9}{"gap":>9}']
    for name, key in metric_rows(model):
        if key not in model:
            continue
        gap = model[key] - blind[key]
        lines.append(f'{name:<22}{model[key]:>9.1f}{blind[key]:>9.1f}'
                     f'{gap:>+9.1f}')
    return '\n'.join(lines)


def examples_per_kind(results: list[dict],
                      blind_results: Optional[list[dict]] = None
                      ) -> list[str]:
    """One answered question per kind: the question, the reference, the
    model's answer and, when given, the blind model's."""
    blind = {result['question_id']: result['prediction']
             for result in blind_results or []}
    shown, lines = set(), []
    for result in results:
        if result['kind'] in shown:
            continue
        shown.add(result['kind'])
        line = (f'[{result["kind"]}] {result["question"]}  reference: '
                f'{result["answer"]} | model: {result["prediction"]}')
        if result['question_id'] in blind:
            line += f' | blind: {blind[result["question_id"]]}'
        lines.append(line)
    return lines
