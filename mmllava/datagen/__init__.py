"""GPT-assisted data tools: an OpenAI-compatible chat client, LLaVA
instruction generation from symbolic image context, and the LLaVA-Bench
review (see docs/data_generation.md)."""
