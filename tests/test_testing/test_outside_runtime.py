"""``mmllava.testing`` (test doubles, test helpers, the demo's generators)
stays outside the runtime: no other module of the package imports it, nor
the benchmark's parts kept beside their tool."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / 'mmllava'
OUTSIDE = ('mmllava.testing', 'benchmark_parts')


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f'{node.module}.{alias.name}'
                         for alias in node.names)
    return names


def test_no_runtime_module_imports_the_satellites():
    offenders = {
        str(path.relative_to(PACKAGE.parent)): sorted(
            name for name in imported_modules(path)
            if name.startswith(OUTSIDE))
        for path in PACKAGE.rglob('*.py')
        if PACKAGE / 'testing' not in path.parents}
    assert not {path: names for path, names in offenders.items() if names}


def test_the_check_sees_both_kinds_of_import(tmp_path):
    module = tmp_path / 'module.py'
    module.write_text('import mmllava.testing.timeouts\n'
                      'def f():\n'
                      '    from benchmark_parts import sizes\n')
    assert {'mmllava.testing.timeouts', 'benchmark_parts'} <= \
        imported_modules(module)
