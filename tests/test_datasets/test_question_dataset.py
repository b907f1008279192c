"""``mmllava/datasets/question_dataset.py``: records shaped like LLaVA's
evaluation question files, the samples they become, the full test-time
pipeline, and the errors on bad input.
"""
import json

import pytest
from mmengine.registry import DefaultScope
from mmpretrain.structures import DataSample
from PIL import Image
from skimage import data as photos

from mmllava.constants import IMAGE_TOKEN_INDEX
from mmllava.conversation import build_generation_prompt
from mmllava.datasets import LLaVAQuestionDataset
from mmllava.registry import DATASETS
from mmllava.templates import get_template

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
PROCESSOR_CFG = dict(type='CLIPImageProcessor', size=dict(shortest_edge=32),
                     crop_size=dict(height=32, width=32))
SHORT = '\nAnswer the question using a single word or phrase.'
META_KEYS = ('sample_id', 'question_id', 'img_path', 'prompt', 'category',
             'image_id', 'gt_answers', 'gt_answer', 'num_choices')

# As in llava_gqa_testdev_balanced.jsonl: the instruction is in the text.
GQA = dict(question_id='201307251', image='n161313.jpg',
           text='Is it overcast?' + SHORT, category='default')
# As in llava_pope_test.jsonl, with a label as the record's ground truth.
POPE = dict(question_id=10000001, image='COCO_val2014_000000310196.jpg',
            text='Is there a snowboard in the image?', category='random',
            label='yes')
# A text-only ScienceQA question as the converter writes it.
SQA_TEXT = dict(question_id='4', text='Which word is a noun?\nA. run\n'
                'B. dog', category='language science', answer='B',
                num_choices=2)
# A VQA question with its 10 answers, placing <image> itself.
VQA = dict(question_id=262148000, image='COCO_val2014_000000262148.jpg',
           text='Where is he looking?\n<image>', answers=['down'] * 10)
RECORDS = [GQA, POPE, SQA_TEXT, VQA]
IMAGES = {
    'n161313.jpg': photos.coffee(),
    'COCO_val2014_000000310196.jpg': photos.astronaut()[:, 100:400],
    'COCO_val2014_000000262148.jpg': photos.chelsea(),
}


@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    for name, pixels in IMAGES.items():
        Image.fromarray(pixels).save(folder / name)
    return folder


def write_jsonl(path, records):
    path.write_text(''.join(json.dumps(record) + '\n' for record in records))
    return str(path)


def build(question_file, image_folder='', pipeline=(), **kwargs):
    with DefaultScope.overwrite_default_scope('mmllava'):
        return DATASETS.build(
            dict(type='LLaVAQuestionDataset', question_file=question_file,
                 image_folder=str(image_folder), pipeline=list(pipeline),
                 **kwargs))


def data_infos(dataset):
    """The samples' data_info, less the ``sample_idx`` mmengine adds."""
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [info.pop('sample_idx') for info in infos] == list(
        range(len(dataset)))
    return infos


def test_data_info_of_each_record_kind(tmp_path):
    dataset = build(write_jsonl(tmp_path / 'q.jsonl', RECORDS), 'images')
    assert isinstance(dataset, LLaVAQuestionDataset)
    assert data_infos(dataset) == [
        dict(sample_id='201307251', question_id='201307251',
             img_path='images/n161313.jpg',
             conversations=[{'from': 'human',
                             'value': '<image>\nIs it overcast?' + SHORT}],
             prompt='Is it overcast?' + SHORT, category='default'),
        dict(sample_id=10000001, question_id=10000001,
             img_path='images/COCO_val2014_000000310196.jpg',
             conversations=[{'from': 'human', 'value':
                             '<image>\nIs there a snowboard in the image?'}],
             prompt='Is there a snowboard in the image?', category='random',
             gt_answer='yes'),
        dict(sample_id='4', question_id='4', img_path=None,
             conversations=[{'from': 'human', 'value': SQA_TEXT['text']}],
             prompt=SQA_TEXT['text'], category='language science',
             gt_answer='B', num_choices=2),
        dict(sample_id=262148000, question_id=262148000,
             img_path='images/COCO_val2014_000000262148.jpg',
             conversations=[{'from': 'human',
                             'value': 'Where is he looking?\n<image>'}],
             prompt='Where is he looking?', gt_answers=['down'] * 10),
    ]


def test_prompt_suffix_is_appended_once(tmp_path):
    dataset = build(write_jsonl(tmp_path / 'q.jsonl', RECORDS),
                    prompt_suffix=SHORT)
    gqa, pope, text_only, vqa = (dataset.get_data_info(i) for i in range(4))
    # LLaVA's GQA text already ends with the instruction: not doubled.
    assert gqa['prompt'] == 'Is it overcast?' + SHORT
    assert pope['prompt'] == 'Is there a snowboard in the image?' + SHORT
    assert pope['conversations'][0]['value'] == \
        '<image>\nIs there a snowboard in the image?' + SHORT
    assert text_only['conversations'][0]['value'] == \
        SQA_TEXT['text'] + SHORT
    assert vqa['conversations'][0]['value'] == \
        'Where is he looking?\n<image>' + SHORT
    assert vqa['prompt'] == 'Where is he looking?' + SHORT


def test_json_list_loads_like_jsonl(tmp_path):
    json_file = tmp_path / 'q.json'
    json_file.write_text(json.dumps(RECORDS))
    from_json = build(str(json_file))
    from_jsonl = build(write_jsonl(tmp_path / 'q.jsonl', RECORDS))
    assert data_infos(from_json) == data_infos(from_jsonl)


def test_full_pipeline_makes_generation_inputs(tmp_path, image_folder,
                                               tokenizer_cfg, tokenizer):
    pipeline = [
        dict(type='LoadImage'),
        dict(type='PadToSquare', mean=CLIP_MEAN),
        dict(type='ProcessImage', image_processor=PROCESSOR_CFG),
        dict(type='TokenizeConversation', tokenizer=tokenizer_cfg,
             template='vicuna_v1', mode='predict'),
        dict(type='PackLLaVAInputs', meta_keys=META_KEYS),
    ]
    dataset = build(write_jsonl(tmp_path / 'q.jsonl', RECORDS), image_folder,
                    pipeline, prompt_suffix=SHORT)
    template = get_template('vicuna_v1')
    for index, record in enumerate(RECORDS):
        item = dataset[index]
        inputs, sample = item['inputs'], item['data_samples']
        info = dataset.get_data_info(index)
        expected = build_generation_prompt(info['conversations'], template,
                                           tokenizer, 'image' in record)
        assert inputs['input_ids'].tolist() == expected
        assert 'labels' not in inputs
        num_images = int('image' in record)
        assert (inputs['input_ids'] == IMAGE_TOKEN_INDEX).sum() == num_images
        assert inputs['pixel_values'].shape == ((1, 3, 32, 32) if num_images
                                                else (0, ))
        assert isinstance(sample, DataSample)
        assert sample.question_id == record['question_id']
        assert sample.sample_id == record['question_id']
        assert sample.prompt == info['prompt']
        for key in ('gt_answers', 'gt_answer', 'num_choices', 'category'):
            assert sample.get(key) == info.get(key), key
    pope = dataset[1]['data_samples']
    assert (pope.gt_answer, pope.category) == ('yes', 'random')
    assert dataset[3]['data_samples'].gt_answers == ['down'] * 10
    # The prompt ends where the answer starts.
    text = tokenizer.decode([token for token in dataset[0]['inputs'][
        'input_ids'].tolist() if token != IMAGE_TOKEN_INDEX])
    assert text.endswith('Is it overcast?' + SHORT + ' ASSISTANT:')


def test_missing_image_fails_only_when_read(tmp_path, tokenizer_cfg):
    dataset = build(write_jsonl(tmp_path / 'q.jsonl', [GQA]),
                    tmp_path / 'no_images', [dict(type='LoadImage')])
    assert len(dataset) == 1
    with pytest.raises(OSError, match='no_images/n161313.jpg'):
        dataset[0]


def test_ground_truth_from_an_annotation_file(tmp_path):
    annotation = tmp_path / 'testdev_balanced_questions.json'
    annotation.write_text(json.dumps({
        '201307251': dict(question='Is it overcast?', answer='no'),
        '201640614': dict(question='Who is wearing the dress?',
                          answer='woman')}))
    second = dict(GQA, question_id='201640614', image='n235859.jpg',
                  text='Who is wearing the dress?' + SHORT)
    question_file = write_jsonl(tmp_path / 'q.jsonl', [GQA, second])
    dataset = build(question_file,
                    ground_truth=dict(format='gqa', file=str(annotation)))
    assert [dataset.get_data_info(i)['gt_answer'] for i in range(2)] == \
        ['no', 'woman']
    # A record's own ground truth must agree with the file's.
    conflicting = write_jsonl(tmp_path / 'c.jsonl',
                              [GQA, dict(second, answer='man')])
    with pytest.raises(ValueError) as info:
        build(conflicting, ground_truth=dict(format='gqa',
                                             file=str(annotation)))
    message = str(info.value)
    assert 'c.jsonl: record 1' in message and "'201640614'" in message
    assert "'man' in the record but 'woman' in" in message


def test_ground_truth_config_errors(tmp_path):
    question_file = write_jsonl(tmp_path / 'q.jsonl', [GQA])
    with pytest.raises(ValueError, match="known: gqa, mme, pope"):
        build(question_file, ground_truth=dict(format='ok_vqa', file='x'))
    with pytest.raises(ValueError,
                       match=r"got keys \['file', 'format', 'path'\]"):
        build(question_file, ground_truth=dict(format='gqa', file='x',
                                               path='y'))


def test_duplicate_question_ids(tmp_path):
    # LLaVA's TextVQA file: the image id as question id, twice.
    first = dict(question_id='831bcec304a17054',
                 image='831bcec304a17054.jpg',
                 text='What brand liquor is on the right?' + SHORT)
    second = dict(first, text='How long has the drink been aged?' + SHORT)
    question_file = write_jsonl(tmp_path / 'q.jsonl', [GQA, first, second])
    with pytest.raises(ValueError) as info:
        build(question_file)
    message = str(info.value)
    assert question_file in message
    assert "record 2 (question_id='831bcec304a17054') repeats the question " \
        'id of record 1' in message
    assert 'allow_duplicate_ids=True' in message
    dataset = build(question_file, allow_duplicate_ids=True)
    assert [dataset.get_data_info(i)['sample_id'] for i in range(3)] == [
        '201307251#0', '831bcec304a17054#1', '831bcec304a17054#2']
    assert dataset.get_data_info(2)['question_id'] == '831bcec304a17054'


@pytest.mark.parametrize('bad_record,expected', [
    ('a string', ['record 1', 'question_id=None', 'expected an object']),
    (dict(image='a.jpg', text='Why?'), ['record 1', 'question_id=None',
                                        '"question_id"']),
    (dict(question_id=True, text='Why?'), ['record 1', '"question_id"']),
    (dict(question_id='q1', image='a.jpg'), ['record 1', "'q1'", '"text"']),
    (dict(question_id='q1', text='  '), ['record 1', "'q1'", '"text"']),
    (dict(question_id=7, image=['a.jpg'], text='Why?'),
     ['record 1', 'question_id=7', '"image"']),
    (dict(question_id=7, text='Why?', category=3), ['record 1', '"category"']),
    (dict(question_id=7, text='Why?', answers='yes'),
     ['record 1', '"answers" must be a list']),
    (dict(question_id=7, text='Why?', answers=['yes', 1]),
     ['record 1', '"answers" must be a list of strings']),
    (dict(question_id=7, text='Why?', num_choices='4'),
     ['record 1', '"num_choices" must be a int']),
    (dict(question_id=7, text='Why?', answer='A', label='yes'),
     ['record 1', 'both "answer" and "label"']),
    (dict(question_id=7, text='<image>\nWhy?'),
     ['record 1', 'question_id=7', 'holds 1 <image> for 0 image']),
    (dict(question_id=7, image='a.jpg', text='<image>\nWhy? <image>'),
     ['record 1', 'holds 2 <image> for 1 image']),
])
def test_bad_record_names_file_index_id_and_fault(bad_record, expected,
                                                  tmp_path):
    question_file = write_jsonl(tmp_path / 'bad.jsonl', [GQA, bad_record])
    with pytest.raises(ValueError) as info:
        build(question_file)
    message = str(info.value)
    assert question_file in message
    for text in expected:
        assert text in message, (text, message)


def test_missing_question_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.jsonl'):
        build(str(tmp_path / 'nowhere.jsonl'))
