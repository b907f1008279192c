"""mmllava against transformers' ``LlavaForConditionalGeneration``, side by
side: training, generation, the data path and MFU (``tools/analysis/
benchmark.py``; see docs/benchmark.md).

The parts of one tool, kept beside it rather than in the installed package
(no module of mmllava imports them): the tool finds them through its own
folder on ``sys.path``, as does whoever else imports them (the memory
measuring processes, the tests) by putting ``tools/analysis`` there."""
