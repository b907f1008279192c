"""``mmllava/lmms_eval_plugin/adapter.py`` and its lmms-eval plugin: the
requests of lmms-eval's model interface, answered as ``tools/test.py``
answers the same questions (slow: a tools/test.py run on the demo model)."""
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from mmllava.lmms_eval_plugin.adapter import LMMSAdapter, cut_at_stops

REPO = Path(__file__).resolve().parents[1]
VQA_CONFIG = REPO / 'configs/llava/llava-tiny_demo_vqa.py'


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


@pytest.mark.slow
def test_answers_equal_tools_test(demo_workspace, demo_checkpoint, tmp_path,
                                  monkeypatch):
    questions = [json.loads(line) for line in (
        demo_workspace / 'data/demo/eval/questions.jsonl'
    ).read_text().splitlines()][:6]
    question_file = tmp_path / 'questions.jsonl'
    question_file.write_text(''.join(json.dumps(q) + '\n'
                                     for q in questions))
    work_dir = tmp_path / 'work'
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools/test.py'), str(VQA_CONFIG),
         demo_checkpoint, '--work-dir', str(work_dir), '--cfg-options',
         f'test_dataloader.dataset.question_file={question_file}'],
        cwd=demo_workspace, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    expected = [json.loads(line) for line in (
        work_dir / 'llava-tiny_demo_vqa_answers.jsonl').read_text(
    ).splitlines()]
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
