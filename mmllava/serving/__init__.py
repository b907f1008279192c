"""An OpenAI-compatible server for mmllava models (``tools/serve.py``)."""
from mmllava.serving.app import ChatServer, ServerSettings, build_app
from mmllava.serving.batcher import DynamicBatcher, QueueFull
from mmllava.serving.continuous import ContinuousBatcher
from mmllava.serving.errors import APIError
from mmllava.serving.engine import GenerationEngine, GenerationJob, Sampling

__all__ = [
    'build_app', 'ChatServer', 'ServerSettings', 'DynamicBatcher',
    'ContinuousBatcher',
    'QueueFull', 'APIError', 'GenerationEngine', 'GenerationJob', 'Sampling'
]
