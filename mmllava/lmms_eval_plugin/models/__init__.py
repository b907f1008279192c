"""What lmms-eval's plugin loader reads: model name -> class name."""
AVAILABLE_MODELS = {'mmllava': 'MMLLaVA'}
