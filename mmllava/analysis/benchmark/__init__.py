"""mmllava against transformers' ``LlavaForConditionalGeneration``, side by
side: training, generation, the data path and MFU (``tools/analysis/
benchmark.py``; see docs/benchmark.md)."""
