"""The user-facing inference API, in mmpretrain's call shapes."""
from mmllava.apis.captioner import batch_captioner
from mmllava.apis.chat import AnswerStreamer, ChatSession
from mmllava.apis.get_model import get_model
from mmllava.apis.inference import inference_model
from mmllava.converters.layouts import load_pretrained
from mmllava.model_index import ModelInfo, find_model, list_models

__all__ = [
    'get_model', 'load_pretrained', 'list_models', 'find_model', 'ModelInfo',
    'inference_model', 'batch_captioner', 'ChatSession', 'AnswerStreamer'
]
