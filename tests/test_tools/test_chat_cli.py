"""``tools/chat.py`` with questions piped in, as a user would script it, in a
folder laid out as the demo configs expect (``model_workspace``, tiny
random weights)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / 'tools/chat.py'
TIMEOUT = 120


def chat(workspace: Path, stdin: str,
         *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(CHAT), 'llava-tiny_demo_vqa', 'ft.pth',
               '--image', 'astronaut.png', '--device', 'cpu',
               '--max-new-tokens', '4', *args]
    return subprocess.run(command, cwd=workspace, input=stdin, text=True,
                          capture_output=True, timeout=scaled_timeout(TIMEOUT),
                          env=dict(os.environ, OMP_NUM_THREADS='1'))


def answers(stdout: str) -> list[str]:
    return [line[len('ASSISTANT: '):] for line in stdout.splitlines()
            if line.startswith('ASSISTANT: ')]


@pytest.mark.slow
def test_piped_question_gets_an_answer(model_workspace):
    run = chat(model_workspace, 'What is this?\n/quit\nNot asked.\n')
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'USER: What is this?' in run.stdout
    answer, = answers(run.stdout)
    assert answer.strip()
    assert 'Not asked.' not in run.stdout
    # Four new tokens end no answer of the random model: the cut is shown
    # on a line of its own, never inside the streamed answer.
    assert '(the answer reached --max-new-tokens before its end and is ' \
        'cut;' in run.stdout
    assert 'token budget' not in run.stdout  # no log line


@pytest.mark.slow
def test_commands_and_end_of_input(model_workspace):
    """``/reset`` and ``/image`` start new conversations: the same first
    question about the same image gets the same answer again."""
    (model_workspace / 'notimage.png').write_text('not an image')
    stdin = ('What is this?\n/reset\nWhat is this?\n/image missing.png\n'
             '/image notimage.png\nWhat is this?\n'
             '/image coffee.png\nWhat is this?\n/image astronaut.png\n'
             'What is this?\n/help\n')  # no /quit: the input just ends
    run = chat(model_workspace, stdin)
    assert run.returncode == 0, run.stderr[-3000:]
    # The question after the refused file is about the image kept.
    first, after_reset, kept, coffee, astronaut = answers(run.stdout)
    assert first == after_reset == astronaut
    assert 'Image not found: missing.png' in run.stdout
    assert 'Not an image PIL can read: notimage.png' in run.stdout
    assert 'New conversation about notimage.png' not in run.stdout
    assert 'New conversation about coffee.png.' in run.stdout
    assert 'Unknown command /help' in run.stdout


@pytest.mark.slow
def test_missing_image_exits_with_an_error(model_workspace):
    run = chat(model_workspace, '', '--image', 'missing.png')
    assert run.returncode == 1
    assert 'Image not found: missing.png' in run.stdout


@pytest.mark.slow
def test_several_images_and_added_ones(model_workspace):
    """``--image`` twice: both go with the first question; ``/add`` brings
    one more with the next; a question whose ``<image>`` do not fit the new
    images is not asked, and the chat goes on."""
    stdin = ('What differs?\n/add coffee.png\nWhat is <image> and <image>?\n'
             'And this one?\n/reset\nWhat differs?\n')
    run = chat(model_workspace, stdin, '--image', 'coffee.png')
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'Chatting about astronaut.png, coffee.png.' in run.stdout
    assert 'Added coffee.png; it goes with the next question.' in run.stdout
    assert 'Not asked: The question holds 2 <image> for 1 image;' in \
        run.stdout
    first, _, after_add, after_reset = answers(run.stdout)
    assert first == after_reset and after_add.strip()
