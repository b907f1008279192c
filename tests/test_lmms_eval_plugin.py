"""``mmllava/lmms_eval_plugin/adapter.py`` and its lmms-eval plugin: the
requests of lmms-eval's model interface, answered as ``tools/test.py``
answers the same questions (slow: a tools/test.py run on the demo model).

lmms-eval 0.7.3 cannot be installed beside this project's torch (pip would
replace it), so one slow test installs it with ``--no-deps`` into a folder
of its own and runs the plugin there, in a subprocess, through lmms-eval's
own plugin loading, ``create_from_arg_string`` and ``Instance``."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from mmllava.lmms_eval_plugin.adapter import LMMSAdapter, cut_at_stops
from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[1]
VQA_CONFIG = REPO / 'configs/llava/llava-tiny_demo_vqa.py'

#: lmms-eval as the slow test installs it (``--no-deps``): the package and
#: the two pure-python modules its model interface (``lmms_eval.api.model``,
#: ``lmms_eval.api.instance``) and model registry (``lmms_eval.models``)
#: import that this environment lacks. Pinned as pip resolved them.
LMMS_EVAL_STACK = ('lmms-eval==0.7.3', 'pytz==2026.6', 'loguru==0.7.3')


try:
    from lmms_eval.api.instance import Instance
    from lmms_eval.api.model import lmms  # noqa: F401
    LMMS_EVAL = True
except ImportError:
    LMMS_EVAL = False


@dataclass
class StandIn:
    """lmms-eval's ``Instance`` as a model sees it, ``args``, where
    lmms-eval is not installed."""
    args: tuple
    metadata: dict = field(default_factory=dict)


def Request(args: tuple):
    """A request: lmms-eval's own ``Instance`` when it is installed."""
    if not LMMS_EVAL:
        return StandIn(args)
    kind = 'generate_until' if isinstance(args[1], dict) else \
        'loglikelihood'
    return Instance(request_type=kind, arguments=args, idx=0,
                    metadata=dict(task=args[4], doc_id=args[3], repeats=1))


def test_stops_and_arguments():
    assert cut_at_stops('A red ball.\n\nUSER: hi', ['\n\n']) == 'A red ball.'
    assert cut_at_stops('yes</s>', ['</s>', 'USER:']) == 'yes'
    assert cut_at_stops('no stop', []) == 'no stop'
    with pytest.raises(ValueError, match='pretrained=<checkpoint> and '
                       'config='):
        LMMSAdapter(pretrained='x.pth')


def test_plugin_names_its_class():
    # lmms-eval's loader: <plugin>.models.AVAILABLE_MODELS, then the class
    # <plugin>.models.<name>.<class>.
    from mmllava.lmms_eval_plugin.models import AVAILABLE_MODELS
    assert AVAILABLE_MODELS == {'mmllava': 'MMLLaVA'}
    source = (REPO / 'mmllava/lmms_eval_plugin/models/'
              'mmllava.py').read_text()
    assert 'class MMLLaVA(LMMSAdapter, lmms)' in source


def test_plugin_against_lmms_eval_base_class():
    base = pytest.importorskip('lmms_eval.api.model')
    from mmllava.lmms_eval_plugin.models.mmllava import MMLLaVA
    assert issubclass(MMLLaVA, base.lmms)
    assert not getattr(MMLLaVA, '__abstractmethods__', None)


@pytest.fixture(scope='module')
def demo_checkpoint(demo_workspace) -> str:
    import torch
    from mmengine.config import Config
    from mmengine.runner import save_checkpoint

    from mmllava.registry import MODELS
    path = demo_workspace / 'lmms_demo_model_sharp.pth'
    if not path.exists():
        cwd = os.getcwd()
        os.chdir(demo_workspace)
        try:
            torch.manual_seed(0)
            model = MODELS.build(Config.fromfile(str(VQA_CONFIG)).model)
        finally:
            os.chdir(cwd)
        with torch.no_grad():
            # Sharper than random, so that answers differ by question (as
            # tests/test_tools/conftest.py does).
            model.llm.get_decoder().norm.weight.mul_(50)
            model.projector[2].weight.mul_(40)
            for layer in model.llm.get_decoder().layers:
                layer.self_attn.q_proj.weight.mul_(10)
                layer.self_attn.k_proj.weight.mul_(10)
        save_checkpoint(model.state_dict(), str(path))
    return str(path)


@pytest.fixture(scope='module')
def tools_test_answers(demo_workspace, demo_checkpoint,
                       tmp_path_factory) -> tuple[list, list]:
    """Six demo questions and ``tools/test.py``'s answer records for them
    (``prompt``, ``text``), in order."""
    questions = [json.loads(line) for line in (
        demo_workspace / 'data/demo/eval/questions.jsonl'
    ).read_text().splitlines()][:6]
    folder = tmp_path_factory.mktemp('tools_test')
    question_file = folder / 'questions.jsonl'
    question_file.write_text(''.join(json.dumps(q) + '\n'
                                     for q in questions))
    work_dir = folder / 'work'
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools/test.py'), str(VQA_CONFIG),
         demo_checkpoint, '--work-dir', str(work_dir), '--cfg-options',
         f'test_dataloader.dataset.question_file={question_file}'],
        cwd=demo_workspace, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=scaled_timeout(600))
    assert result.returncode == 0, result.stdout[-3000:]
    expected = [json.loads(line) for line in (
        work_dir / 'llava-tiny_demo_vqa_answers.jsonl').read_text(
    ).splitlines()]
    return questions, expected


@pytest.mark.slow
def test_answers_equal_tools_test(demo_workspace, demo_checkpoint,
                                  tools_test_answers, monkeypatch):
    questions, expected = tools_test_answers
    # The config's relative paths (checkpoints/demo/...) resolve against the
    # workspace for as long as the adapter lives: it builds parts lazily.
    monkeypatch.chdir(demo_workspace)
    if LMMS_EVAL:
        # lmms-eval's own construction from --model_args.
        from mmllava.lmms_eval_plugin.models.mmllava import MMLLaVA
        adapter = MMLLaVA.create_from_arg_string(
            f'pretrained={demo_checkpoint},config={VQA_CONFIG}',
            dict(batch_size=4, device='cpu'))
    else:
        adapter = LMMSAdapter(pretrained=demo_checkpoint,
                              config=str(VQA_CONFIG), device='cpu',
                              batch_size=4)
    # A task of the test's own: documents with an image file each.
    docs = [dict(image=demo_workspace / 'data/demo' / q['image'])
            for q in questions]
    adapter.task_dict = {'demo': {'test': docs}}

    def doc_to_visual(doc):
        return [Image.open(doc['image']).convert('RGB')]

    requests = [Request((answer['prompt'], dict(until=['\n\n']),
                         doc_to_visual, index, 'demo', 'test'))
                for index, answer in enumerate(expected)]
    answers = adapter.generate_until(requests)
    assert answers == [answer['text'] for answer in expected]
    assert len(set(answers)) > 1  # the questions are told apart
    # loglikelihood: the model's own answer to a question is likelier than
    # another question's answer, which is not its greedy continuation; the
    # log-probability is the negated summed loss of the model's own
    # sample_losses on the same conversation.
    import torch
    from mmengine.dataset import pseudo_collate
    scored = adapter.loglikelihood([
        Request((expected[0]['prompt'], lambda doc, t=text: t,
                 doc_to_visual, 0, 'demo', 'test'))
        for text in (answers[0], answers[1])])
    assert scored[0][0] > scored[1][0] and scored[1][1] is False
    sample = adapter._sample(adapter._pipeline('train'), 0, [
        {'from': 'human', 'value': '<image>\n' + expected[0]['prompt']},
        {'from': 'gpt', 'value': answers[0]}],
        doc_to_visual(docs[0])[0])
    with torch.no_grad():
        batch = adapter.model.data_preprocessor(pseudo_collate([sample]),
                                                False)
        losses, _ = adapter.model.sample_losses(**batch)
    assert scored[0][0] == pytest.approx(-float(losses[0]), rel=1e-4)


@pytest.fixture(scope='module')
def lmms_eval_folder(tmp_path_factory) -> Path:
    """lmms-eval 0.7.3 installed with ``--no-deps`` into a folder of its
    own: put first on ``PYTHONPATH``, it runs on this project's torch."""
    folder = tmp_path_factory.mktemp('lmms_eval')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q',
                    '--no-deps', '--target', str(folder), *LMMS_EVAL_STACK],
                   check=True, timeout=scaled_timeout(600))
    return folder


#: Run with the lmms-eval folder first on the path and
#: LMMS_EVAL_PLUGINS=mmllava.lmms_eval_plugin, in the demo workspace: the
#: plugin's class found by lmms-eval's model registry, built as lmms-eval's
#: evaluator builds a model (--model_args, then batch size as the command
#: line gives it, max_batch_size and device), asked with lmms-eval's own
#: Instance objects on a task of the test's own.
RUN_WITH_LMMS_EVAL = '''
import importlib.util, json, sys
from pathlib import Path
import torch
import lmms_eval
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.models import get_model
from PIL import Image
folder, checkpoint, config, task_file, out = sys.argv[1:]
assert Path(lmms_eval.__file__).resolve().is_relative_to(
    Path(folder).resolve()), lmms_eval.__file__
assert not Path(torch.__file__).resolve().is_relative_to(
    Path(folder).resolve()), torch.__file__
model_class = get_model('mmllava')
assert issubclass(model_class, lmms), model_class.__mro__
# The command line's look-up of the plugin's task folder (cli_evaluate).
tasks = importlib.util.find_spec(
    'mmllava.lmms_eval_plugin.tasks').submodule_search_locations[0]
model = model_class.create_from_arg_string(
    f'pretrained={checkpoint},config={config}',
    dict(batch_size='4', max_batch_size=None, device='cpu'))
task = json.loads(Path(task_file).read_text())
model.task_dict = {'demo': {'test': [dict(image=path)
                                     for path in task['images']]}}

def doc_to_visual(doc):
    return [Image.open(doc['image']).convert('RGB')]

def request(kind, args, doc_id):
    return Instance(request_type=kind, arguments=args, idx=0,
                    metadata=dict(task='demo', doc_id=doc_id, repeats=1))

answers = model.generate_until([
    request('generate_until', (prompt, dict(until=['\\n\\n']),
            doc_to_visual, index, 'demo', 'test'), index)
    for index, prompt in enumerate(task['prompts'])])
scored = model.loglikelihood([
    request('loglikelihood', (task['prompts'][0], lambda doc, t=text: t,
            doc_to_visual, 0, 'demo', 'test'), 0)
    for text in answers[:2]])
Path(out).write_text(json.dumps(dict(
    answers=answers, scored=scored, lmms_eval=lmms_eval.__file__,
    torch=torch.__version__, tasks=tasks)))
'''


@pytest.mark.slow
def test_lmms_eval_itself_answers_as_tools_test(
        demo_workspace, demo_checkpoint, tools_test_answers,
        lmms_eval_folder, tmp_path):
    import torch
    questions, expected = tools_test_answers
    task_file = tmp_path / 'task.json'
    task_file.write_text(json.dumps(dict(
        images=[str(demo_workspace / 'data/demo' / q['image'])
                for q in questions],
        prompts=[answer['prompt'] for answer in expected])))
    out = tmp_path / 'out.json'
    env = dict(os.environ, LMMS_EVAL_PLUGINS='mmllava.lmms_eval_plugin',
               PYTHONPATH=os.pathsep.join(
                   [str(lmms_eval_folder), str(REPO)]
                   + [p for p in os.environ.get('PYTHONPATH', '').split(
                       os.pathsep) if p]))
    result = subprocess.run(
        [sys.executable, '-c', RUN_WITH_LMMS_EVAL, str(lmms_eval_folder),
         demo_checkpoint, str(VQA_CONFIG), str(task_file), str(out)],
        cwd=demo_workspace, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=scaled_timeout(600))
    assert result.returncode == 0, result.stdout[-3000:]
    ran = json.loads(out.read_text())
    # lmms-eval from its folder, torch the project's.
    assert ran['torch'] == torch.__version__
    assert Path(ran['tasks']) == REPO / 'mmllava/lmms_eval_plugin/tasks'
    assert ran['answers'] == [answer['text'] for answer in expected]
    assert len(set(ran['answers'])) > 1
    (own, own_greedy), (other, other_greedy) = ran['scored']
    assert own > other and other_greedy is False
