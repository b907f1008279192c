"""Model parts; importing this module registers them."""
from mmllava.models.data_preprocessor import LLaVADataPreprocessor
from mmllava.models.language_models import build_causal_lm
from mmllava.models.llava import LLaVA, splice_image_features
from mmllava.models.packing import (PackedBatch, pack_batch,
                                    packed_sdpa_attention)
from mmllava.models.projectors import (IdentityProjector, LinearProjector,
                                       MLPProjector, build_projector)
from mmllava.models.tokenizer import build_pretrained_tokenizer, build_tokenizer
from mmllava.models.vision_encoders import (CLIPVisionEncoder,
                                            SiglipVisionEncoder)

__all__ = [
    'LLaVA', 'LLaVADataPreprocessor', 'CLIPVisionEncoder',
    'SiglipVisionEncoder', 'LinearProjector', 'MLPProjector',
    'IdentityProjector', 'build_projector', 'build_causal_lm',
    'build_pretrained_tokenizer', 'build_tokenizer', 'splice_image_features',
    'PackedBatch', 'pack_batch', 'packed_sdpa_attention'
]
