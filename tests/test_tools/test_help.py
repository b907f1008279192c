"""Every command-line tool under tools/ answers ``--help`` without importing
torch, transformers, mmengine's runner or DeepSpeed: it builds its parser
from light modules and imports the heavy ones once its arguments are parsed
(see tools/train.py), so that ``--help`` and argument errors answer at once.

Each tool runs in a fresh interpreter, as ``python TOOL --help`` would run
it, and then says which of those modules it imported.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmllava.testing.timeouts import scaled_timeout

REPO = Path(__file__).resolve().parents[2]
HEAVY = ('torch', 'transformers', 'mmengine.runner', 'deepspeed')

#: Runs the script as ``python SCRIPT --help`` does (its folder first on
#: sys.path, for sibling imports such as benchmark_parts) and prints, as
#: its last line, the exit code and the heavy modules imported.
WRAPPER = '''
import json, os, runpy, sys
script = sys.argv[1]
sys.argv = [script, '--help']
sys.path[0] = os.path.dirname(script)
try:
    runpy.run_path(script, run_name='__main__')
    code = 0
except SystemExit as stop:
    code = stop.code or 0
sys.stdout.flush()
print('\\n' + json.dumps(dict(code=code, imported=[
    name for name in {heavy!r} if name in sys.modules])))
'''.format(heavy=HEAVY)


def tool_scripts() -> list[str]:
    """The scripts under tools/ that run as ``__main__``; modules of a
    package folder (benchmark_parts/, gpu_check_parts/) are the tools'
    libraries, not tools."""
    scripts = []
    for path in sorted((REPO / 'tools').rglob('*.py')):
        if (path.parent / '__init__.py').exists():
            continue
        if "if __name__ == '__main__'" in path.read_text(encoding='utf-8'):
            scripts.append(path.relative_to(REPO).as_posix())
    return scripts


def test_the_tools_are_found():
    scripts = tool_scripts()
    for expected in ('tools/train.py', 'tools/serve.py',
                     'tools/analysis/benchmark.py',
                     'tools/model_converters/mmllava_to_hf.py',
                     'tools/data/caption_images.py',
                     'tools/eval/gpt_review.py'):
        assert expected in scripts
    assert not any('_parts/' in script for script in scripts)


@pytest.mark.parametrize('script', tool_scripts())
@pytest.mark.slow
def test_help_imports_no_heavy_module(script):
    run = subprocess.run(
        [sys.executable, '-c', WRAPPER, str(REPO / script)], cwd=REPO,
        capture_output=True, text=True, timeout=scaled_timeout(60))
    assert run.returncode == 0, run.stderr
    help_text, _, last = run.stdout.rstrip('\n').rpartition('\n')
    result = json.loads(last)
    assert result['code'] == 0, run.stdout + run.stderr
    assert 'usage:' in help_text, run.stdout
    assert result['imported'] == [], (
        f'{script} --help imported {result["imported"]}')
