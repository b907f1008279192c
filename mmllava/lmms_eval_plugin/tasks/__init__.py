"""The plugin's task folder: none of its own.

lmms-eval's command line (0.7.3, ``cli_evaluate``) adds, for every plugin in
``LMMS_EVAL_PLUGINS``, the folder of ``<plugin>.tasks`` to its task include
paths, reading ``importlib.util.find_spec('<plugin>.tasks')`` without a
check: a plugin without this package fails there before any task is read.
Task yaml files put here would be found as lmms-eval's own.
"""
