"""``mmllava/testing/demo/report.py``: the model beside its blind baseline."""
from mmllava.testing.demo.report import comparison_table, examples_per_kind


def test_table_rows_gaps_and_kinds():
    model = {'coco-caption/Bleu_4': 30.0, 'coco-caption/CIDEr': 120.5,
             'demo-vqa/accuracy': 60.0, 'demo-vqa/colour/accuracy': 80.0,
             'demo-vqa/count/accuracy': 40.0, 'demo-vqa/unscored': 0}
    blind = dict(model, **{'coco-caption/CIDEr': 20.0,
                           'demo-vqa/colour/accuracy': 20.0})
    lines = comparison_table(model, blind).splitlines()
    assert lines[0].split() == ['metric', 'model', 'blind', 'gap']
    rows = {line[:22].strip(): line[22:].split() for line in lines[1:]}
    assert rows == {
        'caption BLEU-4': ['30.0', '30.0', '+0.0'],
        'caption CIDEr': ['120.5', '20.0', '+100.5'],
        'VQA exact match': ['60.0', '60.0', '+0.0'],
        'colour': ['80.0', '20.0', '+60.0'],
        'count': ['40.0', '40.0', '+0.0']}


def test_one_example_per_kind_with_the_blind_answer():
    results = [
        dict(question_id=1, kind='colour', question='What colour?',
             answer='Red', prediction='Red'),
        dict(question_id=2, kind='colour', question='Which colour?',
             answer='Blue', prediction='Red'),
        dict(question_id=3, kind='count', question='How many?',
             answer='2', prediction='3'),
    ]
    blind = [dict(question_id=1, prediction='Green'),
             dict(question_id=3, prediction='1')]
    assert examples_per_kind(results, blind) == [
        '[colour] What colour?  reference: Red | model: Red | blind: Green',
        '[count] How many?  reference: 2 | model: 3 | blind: 1']
