"""The parts of ``tools/analysis/gpu_check.py`` (see docs/gpu_check.md): the
CUDA paths checked against their CPU twins, and the 7B-width step and
generation measured beside transformers' Llava.

Like ``benchmark_parts`` beside it, no module of mmllava imports them: the
tool finds them (and the benchmark's parts it reuses) through its own folder
on ``sys.path``."""
