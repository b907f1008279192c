"""GPT-assisted data tools: an OpenAI-compatible chat client, LLaVA
instruction generation from symbolic image context, ShareGPT4V-style
detailed captioning (a vision endpoint or a local captioner) and the
LLaVA-Bench review (see docs/data_generation.md, docs/captioning.md)."""
