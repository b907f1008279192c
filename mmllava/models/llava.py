"""LLaVA: vision encoder -> projector -> image features spliced into the
LLM's input embeddings -> causal LM."""
import logging
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.structures import DataSample
from safetensors.torch import load_file
from torch import nn

from mmllava.constants import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from mmllava.models.anyres import (MERGE_TYPES, Size, check_anyres_max,
                                   check_pinpoints, count_image_tokens,
                                   merge_tile_features, num_tiles)
from mmllava.models.generated_text import GeneratedText, ended
from mmllava.models.lora import apply_lora
from mmllava.models.model_inputs import LLaVAInputs
from mmllava.models.packing import (check_packing_cfg, pack_batch,
                                    use_packed_attention)
from mmllava.models.projectors import build_projector
from mmllava.models.tokenizer import build_tokenizer
from mmllava.registry import MODELS
from mmllava.templates import cut_at_stop, get_template
from mmllava.utils.files import resolve_checkpoint
from mmllava.utils.parameters import full_numel
from mmllava.utils.safe_load import load_torch_file


def splice_image_features(
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: Optional[torch.Tensor],
        image_features: Sequence[Sequence[torch.Tensor]],
        embed_tokens: Callable[[torch.Tensor], torch.Tensor],
        padding_side: str = 'right',
        sample_names: Optional[Sequence[object]] = None,
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Replace each image placeholder with that image's feature rows.

    Args:
        input_ids (Tensor): ``(B, L)`` ids; :data:`IMAGE_TOKEN_INDEX` marks an
            image. Positions outside ``attention_mask`` are padding.
        attention_mask (Tensor): ``(B, L)``, 1 for real tokens.
        labels (Tensor, optional): ``(B, L)`` labels.
        image_features (Sequence[Sequence[Tensor]]): Per sample, one
            ``(N_i, C)`` tensor per image, in placeholder order. ``N_i`` may
            differ between images.
        embed_tokens (Callable): The LLM's input embedding.
        padding_side (str): Where the new padding goes: ``'right'`` for
            training, ``'left'`` for generation.
        sample_names (Sequence, optional): Named in errors.

    Returns:
        tuple: ``inputs_embeds`` ``(B, L', C)``, ``attention_mask`` ``(B,
        L')`` and ``labels`` ``(B, L')`` (or None). Image rows are labelled
        :data:`IGNORE_INDEX`.
    """
    is_image = input_ids == IMAGE_TOKEN_INDEX
    # (B, L) -> (B, L, C); placeholders embed as id 0 and are dropped below.
    text_embeds = embed_tokens(input_ids.masked_fill(is_image, 0))
    sequences, sequence_labels = [], []
    for index in range(input_ids.shape[0]):
        valid = attention_mask[index].bool()
        embeds = text_embeds[index][valid]
        sample_labels = labels[index][valid] if labels is not None else None
        positions = is_image[index][valid].nonzero().flatten().tolist()
        features = image_features[index]
        if len(positions) != len(features):
            name = sample_names[index] if sample_names else index
            raise ValueError(
                f'Sample {name!r}: image placeholders and images do not '
                f'match: {len(positions)} placeholders, {len(features)} '
                'images.')
        pieces, label_pieces, start = [], [], 0
        for position, image in zip(positions, features):
            pieces += [embeds[start:position], image.to(embeds.dtype)]
            if sample_labels is not None:
                label_pieces += [
                    sample_labels[start:position],
                    sample_labels.new_full((len(image), ), IGNORE_INDEX)]
            start = position + 1
        pieces.append(embeds[start:])
        sequences.append(torch.cat(pieces))
        if sample_labels is not None:
            label_pieces.append(sample_labels[start:])
            sequence_labels.append(torch.cat(label_pieces))

    batch_size, width = len(sequences), text_embeds.shape[-1]
    max_len = max(len(sequence) for sequence in sequences)
    inputs_embeds = text_embeds.new_zeros(batch_size, max_len, width)
    new_mask = attention_mask.new_zeros(batch_size, max_len)
    new_labels = input_ids.new_full((batch_size, max_len), IGNORE_INDEX) \
        if labels is not None else None
    for index, sequence in enumerate(sequences):
        span = slice(0, len(sequence)) if padding_side == 'right' \
            else slice(max_len - len(sequence), max_len)
        inputs_embeds[index, span] = sequence
        new_mask[index, span] = 1
        if new_labels is not None:
            new_labels[index, span] = sequence_labels[index]
    return inputs_embeds, new_mask, new_labels


def sample_ids(data_samples: Optional[list]) -> Optional[list]:
    """Each sample's ``sample_id``, for errors."""
    return [sample.metainfo.get('sample_id') for sample in data_samples] \
        if data_samples else None


def load_projector_state(path: str) -> dict:
    """Read projector weights from a stage-1 result.

    Accepts a stage-1 work dir (its latest checkpoint, as named in its
    ``last_checkpoint`` file), an mmllava checkpoint (``.pth``, keys
    ``projector.*``), a safetensors file, or the official
    ``mm_projector.bin`` (keys ``model.mm_projector.*``). An
    ``image_newline`` saved beside them (AnyRes ``'spatial_unpad'``) comes
    back under that key.
    """
    path = resolve_checkpoint(path)
    if path.endswith('.safetensors'):
        state = load_file(path)
    else:
        state = load_torch_file(path)
        state = state.get('state_dict', state)
    for prefix in ('projector.', 'model.mm_projector.', 'mm_projector.'):
        selected = {key[len(prefix):]: value for key, value in state.items()
                    if key.startswith(prefix)}
        if selected:
            # An AnyRes connector's learned row separator travels with it.
            for key in ('image_newline', 'model.image_newline'):
                if key in state:
                    selected['image_newline'] = state[key]
            return selected
    raise KeyError(f'No projector weights in {path} (looked for keys '
                   "starting with 'projector.' or 'model.mm_projector.').")


def check_plain_lm_head(config) -> None:
    """The loss applies the LM head itself, at supervised positions only;
    LLMs that scale or cap their logits after the head are not supported."""
    for name in ('final_logit_softcapping', 'logit_scale'):
        if getattr(config, name, None) is not None:
            raise NotImplementedError(
                f'{config.model_type} sets {name}: LLaVA computes logits '
                'with the plain output embedding and would differ.')


def weights_source(part: dict) -> str:
    """Where a tower's or LLM's weights come from, for the build log."""
    pretrained = part.get('pretrained')
    return f'from {pretrained}' if pretrained else 'randomly initialised'


@MODELS.register_module()
class LLaVA(BaseModel):
    """LLaVA: a vision encoder, a projector and a causal LLM.

    Args:
        vision_encoder (dict): Config of a vision encoder
            (``CLIPVisionEncoder`` / ``SiglipVisionEncoder``).
        llm (dict): Config of the causal LM (``HFCausalLM``).
        tokenizer (dict): Config of the tokenizer (``PretrainedTokenizer``).
        projector (dict): ``type`` is ``'linear'``, ``'mlp{N}x_gelu'``,
            ``'identity'`` or a registered projector. Defaults to
            ``dict(type='mlp2x_gelu')``.
        template (str): Chat template used to end generated text.
            Defaults to ``'vicuna_v1'``.
        freeze_vision_encoder (bool): Defaults to True (both stages).
        freeze_llm (bool): True in stage 1, False in stage 2.
        projector_pretrained (str, optional): Stage-1 projector weights to
            load (see :func:`load_projector_state`).
        generation_cfg (dict): Passed to ``generate`` in predict mode.
            Defaults to greedy decoding of up to 128 tokens.
        image_aspect_ratio (str): ``'pad'``: one tile per image (the
            pipeline pads or resizes it to the tower's input); ``'anyres'``:
            LLaVA-NeXT's base view plus a grid of tiles per image (see
            docs/high_resolution.md). Defaults to ``'pad'``.
        image_grid_pinpoints (list, optional): ``(height, width)`` grid
            resolutions, multiples of the tower's image size; required for
            ``'anyres'``, the same list as the pipeline's ``AnyResImage``.
        mm_patch_merge_type (str): How an image's tiles become one sequence
            (``'anyres'`` only): ``'flat'``, ``'spatial'`` or
            ``'spatial_unpad'`` (which owns a learned ``image_newline``,
            trained with the projector). Defaults to ``'flat'``.
        anyres_max (int, optional): ``N`` of LLaVA-OneVision's
            ``anyres_max_N`` (the official ``image_aspect_ratio=
            'anyres_max_9'``), with ``'spatial_unpad'``: an image's unpadded
            tile grid of more than about ``N`` tiles' features is shrunk by
            bilinear interpolation before the newlines are appended (see
            docs/high_resolution.md). Defaults to None (no budget, as
            LLaVA-NeXT 2024-01).
        packing (dict, optional): ``dict(max_length=N)`` packs the samples
            of each loss batch, after the image features are spliced in,
            into rows of at most ``N`` tokens, each sample attending only to
            itself (see docs/packing.md). Sets the LLM's attention to
            ``'sdpa_packed'`` unless it uses flash attention. Defaults to
            None (off).
        lora (dict, optional): Train the LLM through LoRA adapters (peft)
            instead of in full: ``dict(r=128, alpha=256, dropout=0.05,
            target='all-linear')`` (the official recipe; any key may be left
            out), and ``vision_encoder=dict(r=..., alpha=..., dropout=...,
            target=...)`` to adapt the vision tower too. The LLM's own
            weights freeze; the projector trains (see docs/lora.md).
            Defaults to None (off).
        data_preprocessor (dict, optional): Defaults to
            ``LLaVADataPreprocessor``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 vision_encoder: dict,
                 llm: dict,
                 tokenizer: dict,
                 projector: dict = dict(type='mlp2x_gelu'),
                 template: str = 'vicuna_v1',
                 freeze_vision_encoder: bool = True,
                 freeze_llm: bool = False,
                 projector_pretrained: Optional[str] = None,
                 generation_cfg: dict = dict(
                     max_new_tokens=128, do_sample=False),
                 image_aspect_ratio: str = 'pad',
                 image_grid_pinpoints: Optional[list] = None,
                 mm_patch_merge_type: str = 'flat',
                 anyres_max: Optional[int] = None,
                 packing: Optional[dict] = None,
                 lora: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        # Built from mmllava's registry: BaseModel would look the type up in
        # mmengine's root registry, which finds it only inside a runner that
        # sets default_scope='mmllava'.
        if not isinstance(data_preprocessor, nn.Module):
            data_preprocessor = MODELS.build(
                data_preprocessor or dict(type='LLaVADataPreprocessor'))
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.vision_encoder = MODELS.build(vision_encoder)
        self.llm = MODELS.build(llm)
        self.tokenizer = build_tokenizer(tokenizer)
        check_plain_lm_head(self.llm.config)
        self.projector = build_projector(
            projector, self.vision_encoder.hidden_size,
            self.llm.config.hidden_size)
        self.template = get_template(template)
        self.generation_cfg = dict(generation_cfg)
        self._set_image_layout(image_aspect_ratio, image_grid_pinpoints,
                               mm_patch_merge_type, anyres_max)
        if projector_pretrained is not None:
            self._load_connector(load_projector_state(projector_pretrained))
        self.packing_max_length = check_packing_cfg(packing)
        if self.packing_max_length is not None:
            use_packed_attention(self.llm)
        if freeze_vision_encoder:
            self.vision_encoder.freeze()
        elif self.vision_encoder.trainable_from_layer is not None:
            raise ValueError('trainable_from_layer only applies to a frozen '
                             'vision encoder (freeze_vision_encoder=True).')
        if freeze_llm:
            self.llm.requires_grad_(False)
        if lora is not None:
            if freeze_llm:
                raise ValueError('lora trains the LLM through adapters; it '
                                 'needs freeze_llm=False.')
            if not freeze_vision_encoder and \
                    lora.get('vision_encoder') is not None:
                raise ValueError(
                    'lora.vision_encoder adapts a frozen vision tower; it '
                    'needs freeze_vision_encoder=True.')
            apply_lora(self, lora)
        print_log(
            'Built LLaVA: vision tower '
            f'{weights_source(vision_encoder)}, LLM {weights_source(llm)}, '
            f'projector {projector_pretrained or "newly initialised"}; '
            'trainable parameters: ' + ', '.join(
                f'{name} {count:,}'
                for name, count in self.trainable_parameter_counts().items()),
            logger='current')

    def _set_image_layout(self, image_aspect_ratio: str,
                          image_grid_pinpoints: Optional[list],
                          mm_patch_merge_type: str,
                          anyres_max: Optional[int]) -> None:
        if image_aspect_ratio not in ('pad', 'anyres'):
            raise ValueError("image_aspect_ratio must be 'pad' or 'anyres', "
                             f'got {image_aspect_ratio!r}')
        self.image_aspect_ratio = image_aspect_ratio
        self.mm_patch_merge_type = mm_patch_merge_type
        self.image_grid_pinpoints = None
        self.anyres_max = None
        # A parameter slot either way: None unless 'spatial_unpad'.
        self.register_parameter('image_newline', None)
        if image_aspect_ratio == 'pad':
            if image_grid_pinpoints is not None or anyres_max is not None \
                    or mm_patch_merge_type != 'flat':
                raise ValueError(
                    'image_grid_pinpoints, mm_patch_merge_type and '
                    "anyres_max apply to image_aspect_ratio='anyres' only; "
                    "with 'pad' each image is one tile.")
            return
        if image_grid_pinpoints is None:
            raise ValueError("image_aspect_ratio='anyres' needs "
                             'image_grid_pinpoints ((height, width) pairs).')
        if mm_patch_merge_type not in MERGE_TYPES:
            raise ValueError(f'mm_patch_merge_type must be one of '
                             f'{MERGE_TYPES}, got {mm_patch_merge_type!r}')
        if mm_patch_merge_type != 'flat' and \
                self.vision_encoder.select_feature != 'patch':
            raise ValueError(f'mm_patch_merge_type {mm_patch_merge_type!r} '
                             'lays patches out as a grid; it needs the '
                             "vision encoder's select_feature='patch'.")
        self.image_grid_pinpoints = check_pinpoints(image_grid_pinpoints,
                                                    self.tile_size)
        self.anyres_max = check_anyres_max(anyres_max, mm_patch_merge_type)
        if mm_patch_merge_type == 'spatial_unpad':
            hidden = self.llm.config.hidden_size
            self.image_newline = nn.Parameter(
                torch.randn(hidden) / hidden**0.5)

    def _load_connector(self, state: dict) -> None:
        """Projector weights, and ``image_newline`` when the model has one
        and the state holds it (else it keeps its initialisation)."""
        newline = state.pop('image_newline', None)
        self.projector.load_state_dict(state)
        if newline is not None and self.image_newline is not None:
            with torch.no_grad():
                self.image_newline.copy_(newline)

    @property
    def tile_size(self) -> int:
        """The vision tower's input side (one tile)."""
        return self.vision_encoder.model.config.image_size

    def image_token_count(self, image_size: Optional[Size] = None) -> int:
        """Feature rows an image of ``(height, width)`` becomes in the LLM
        input (the size matters only with AnyRes)."""
        config = self.vision_encoder.model.config
        side = config.image_size // config.patch_size
        per_tile = side * side + int(
            self.vision_encoder.select_feature == 'cls_patch')
        if self.image_aspect_ratio == 'pad':
            return per_tile
        if image_size is None:
            raise ValueError('With AnyRes the image tokens depend on the '
                             'image size: give its (height, width).')
        return count_image_tokens(image_size, self.image_grid_pinpoints,
                                  self.tile_size, config.patch_size,
                                  self.mm_patch_merge_type, per_tile,
                                  self.anyres_max)

    def trainable_parameter_counts(self) -> dict[str, int]:
        """Trainable parameter count of each part (whole counts, also for
        parameters that DeepSpeed ZeRO-3 holds partitioned)."""
        counts = {
            name: sum(full_numel(p) for p in part.parameters()
                      if p.requires_grad)
            for name, part in (('vision_encoder', self.vision_encoder),
                               ('projector', self.projector),
                               ('llm', self.llm))
        }
        if self.image_newline is not None:
            counts['image_newline'] = full_numel(self.image_newline) \
                if self.image_newline.requires_grad else 0
        return counts

    def init_weights(self) -> None:
        """Keep the transformers initialisation and loaded weights."""

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W) -> (N, N_patches, C_llm)``."""
        # (N, 3, H, W) -> (N, N_patches, C_vision)
        features = self.vision_encoder(pixel_values)
        # The projector may keep fp32 weights beside a bf16 tower.
        weight = next(self.projector.parameters(), None)
        if weight is not None:
            features = features.to(weight.dtype)
        # (N, N_patches, C_vision) -> (N, N_patches, C_llm)
        return self.projector(features)

    def image_features(self, pixel_values: Optional[torch.Tensor],
                       num_images: Sequence[int],
                       image_sizes: Optional[torch.Tensor] = None
                       ) -> list:
        """Per sample, one ``(N_i, C_llm)`` feature block per image.

        Args:
            pixel_values (Tensor, optional): ``'pad'``: ``(sum num_images, 3,
                S, S)``; ``'anyres'``: every image's tiles (base view first),
                image after image.
            num_images (Sequence[int]): Images per sample.
            image_sizes (Tensor, optional): ``(sum num_images, 2)`` original
                ``(height, width)`` per image; needed for ``'anyres'``.
        """
        if self.image_aspect_ratio == 'pad':
            num_given = 0 if pixel_values is None else len(pixel_values)
            if num_given != sum(num_images):
                raise ValueError(
                    f'{num_given} images given for a batch whose samples '
                    f'count {sum(num_images)} ({list(num_images)}).')
            # Per sample, (num_images_i, N_patches, C_llm): one row block
            # per image.
            return [[] for _ in num_images] if pixel_values is None \
                else self.encode_images(pixel_values).split(list(num_images))
        sizes = [] if image_sizes is None else \
            [tuple(int(side) for side in size) for size in image_sizes]
        if len(sizes) != sum(num_images):
            raise ValueError(
                f'{len(sizes)} image sizes given for a batch whose samples '
                f"count {sum(num_images)} images ({list(num_images)}); "
                "'anyres' needs each image's (height, width) (AnyResImage "
                'adds image_sizes).')
        tiles = [num_tiles(size, self.image_grid_pinpoints, self.tile_size)
                 for size in sizes]
        num_given = 0 if pixel_values is None else len(pixel_values)
        if num_given != sum(tiles):
            raise ValueError(
                f'{num_given} tiles given; the images of sizes {sizes} make '
                f'{sum(tiles)} ({tiles}, base views included).')
        if pixel_values is None:
            return [[] for _ in num_images]
        # All tiles of the batch in one vision call:
        # (N_tiles, 3, S, S) -> (N_tiles, N_patches, C_llm)
        features = self.encode_images(pixel_values).split(tiles)
        merged = [
            merge_tile_features(image, size, self.image_grid_pinpoints,
                                self.tile_size, self.mm_patch_merge_type,
                                self.image_newline, self.anyres_max)
            for image, size in zip(features, sizes)]
        per_sample, start = [], 0
        for count in num_images:
            per_sample.append(merged[start:start + count])
            start += count
        return per_sample

    def embed_inputs(self, inputs: LLaVAInputs, padding_side: str
                     ) -> tuple[torch.Tensor, torch.Tensor,
                                Optional[torch.Tensor]]:
        """The LLM's input embeddings, with each image's features spliced
        in where its placeholder stood, and the matching attention mask and
        labels (None without labels), padded on ``padding_side``."""
        features_per_sample = self.image_features(
            inputs.pixel_values, inputs.num_images, inputs.image_sizes)
        return splice_image_features(
            inputs.input_ids, inputs.attention_mask, inputs.labels,
            features_per_sample, self.llm.get_input_embeddings(),
            padding_side, sample_ids(inputs.data_samples))

    def forward(self,
                input_ids: torch.Tensor,
                attention_mask: torch.Tensor,
                labels: Optional[torch.Tensor] = None,
                pixel_values: Optional[torch.Tensor] = None,
                num_images: Optional[Sequence[int]] = None,
                data_samples: Optional[list] = None,
                mode: str = 'tensor',
                image_sizes: Optional[torch.Tensor] = None):
        """Run in mmengine's three modes.

        ``'loss'`` returns ``dict(loss=...)``; ``'predict'`` returns
        :class:`DataSample` s with ``pred_text``; ``'tensor'`` returns the
        logits ``(B, L', V)``. ``image_sizes`` (``'anyres'``): see
        :meth:`image_features`.
        """
        inputs = LLaVAInputs(input_ids, attention_mask, labels, pixel_values,
                             num_images, image_sizes, data_samples)
        if mode == 'loss':
            return self.loss(inputs)
        if mode == 'predict':
            return self.predict(inputs)
        if mode == 'tensor':
            embeds, mask, _ = self.embed_inputs(inputs.without_labels(),
                                                'right')
            return self.llm(inputs_embeds=embeds, attention_mask=mask,
                            use_cache=False).logits
        raise ValueError(f'Unknown mode {mode!r}')

    def loss(self, inputs: LLaVAInputs) -> dict:
        """Next-token cross entropy over supervised tokens only.

        Logits are computed only where a label is supervised (the LM head
        over the whole vocabulary is the costliest layer of a small LLM).
        A batch without supervised tokens gives a zero loss with zero
        gradient.
        """
        if inputs.labels is None:
            raise ValueError("mode='loss' needs labels")
        embeds, mask, labels = self.embed_inputs(inputs, 'right')
        if self.packing_max_length is not None:
            packed = pack_batch(embeds, mask, labels, self.packing_max_length,
                                sample_ids(inputs.data_samples))
            # (R, L_row, C); targets are already shifted per sample.
            hidden = self.llm.get_decoder()(
                **packed.llm_kwargs()).last_hidden_state
            targets = packed.targets
        else:
            hidden, targets = self._next_token_states(embeds, mask, labels)
        summed, supervised = self._supervised_losses(hidden, targets, 'sum')
        loss = summed / max(int(supervised.sum()), 1)
        # Keeps the graph connected (zero gradient) when nothing is
        # supervised, so every parameter still gets a gradient.
        loss = loss + hidden.sum() * 0.0
        if inputs.pixel_values is None:
            loss = loss + self._empty_image_term()
        return dict(loss=loss)

    def sample_losses(self,
                      input_ids: torch.Tensor,
                      attention_mask: torch.Tensor,
                      labels: torch.Tensor,
                      pixel_values: Optional[torch.Tensor] = None,
                      num_images: Optional[Sequence[int]] = None,
                      data_samples: Optional[list] = None,
                      image_sizes: Optional[torch.Tensor] = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample's summed loss over its supervised tokens, and how many
        tokens that is: what :meth:`loss` averages over the batch, kept apart
        per sample, so that a measurement over a whole set can weight every
        token alike (``losses.sum() / counts.sum()``, or per group).

        Takes what the data preprocessor returns. Runs unpacked even when
        the model packs its training batches: packing lays a batch out
        differently, it does not change any sample's loss.

        Returns:
            tuple: ``(B,)`` float32 summed cross entropies (nats) and
            ``(B,)`` supervised token counts.
        """
        if labels is None:
            raise ValueError('sample_losses needs labels (a training '
                             "pipeline's TokenizeConversation, mode='train')")
        embeds, mask, labels = self.embed_inputs(
            LLaVAInputs(input_ids, attention_mask, labels, pixel_values,
                        num_images, image_sizes, data_samples), 'right')
        hidden, targets = self._next_token_states(embeds, mask, labels)
        token_losses, supervised = self._supervised_losses(hidden, targets,
                                                           'none')
        # The supervised tokens in row-major order, each with its row.
        rows = supervised.nonzero()[:, 0]
        losses = token_losses.new_zeros(len(targets)).index_add_(
            0, rows, token_losses)
        return losses, supervised.sum(dim=1)

    def _supervised_losses(self, hidden: torch.Tensor, targets: torch.Tensor,
                           reduction: str
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross entropy at the supervised positions only (the LM head runs
        nowhere else), reduced by ``reduction``, and the supervised mask."""
        supervised = targets != IGNORE_INDEX
        # (B, L'-1, C) or (R, L_row, C) -> (N_supervised, C)
        #   -> (N_supervised, V)
        logits = self.llm.get_output_embeddings()(hidden[supervised])
        return F.cross_entropy(logits.float(), targets[supervised],
                               reduction=reduction), supervised

    def _next_token_states(self, embeds: torch.Tensor, mask: torch.Tensor,
                           labels: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """The unpacked decoder's last hidden states beside the labels they
        predict: ``(B, L'-1, C)`` and ``(B, L'-1)``."""
        # use_cache=False: with the cache on, transformers 5 Llama ignores
        # explicit position ids (see docs/design.md).
        hidden = self.llm.get_decoder()(
            inputs_embeds=embeds, attention_mask=mask,
            use_cache=False).last_hidden_state
        # Position t predicts label t + 1.
        return hidden[:, :-1], labels[:, 1:]

    def _empty_image_term(self) -> torch.Tensor:
        """Zero, computed through the trainable part of the image path.

        A batch without images (modality-grouped text-only batches are
        common in stage 2) would otherwise leave the projector and any
        trainable vision layers without a gradient, which distributed data
        parallel training rejects. Like the official code, a zero image goes
        through a partly trainable encoder; a frozen one is skipped.
        """
        device = next(self.vision_encoder.parameters()).device
        if any(p.requires_grad for p in self.vision_encoder.parameters()):
            size = self.vision_encoder.model.config.image_size
            features = self.encode_images(
                torch.zeros(1, 3, size, size, device=device))
        else:
            features = self.projector(torch.zeros(
                0, self.vision_encoder.hidden_size, device=device))
        if self.image_newline is not None:
            return (features.sum() + self.image_newline.sum()) * 0.0
        return features.sum() * 0.0

    @torch.no_grad()
    def predict(self, inputs: LLaVAInputs) -> list[DataSample]:
        """Generate with ``generation_cfg`` (greedy by default) and set each
        sample's ``pred_text``, and ``pred_cut``: whether the answer reached
        the token budget before its end."""
        texts = self.generate_from(inputs)
        samples = inputs.data_samples or [DataSample() for _ in texts]
        for sample, text in zip(samples, texts):
            sample.set_field(str(text), 'pred_text', field_type='metainfo')
            sample.set_field(text.cut, 'pred_cut', field_type='metainfo')
        return samples

    @torch.no_grad()
    def generate_answers(self,
                         input_ids: torch.Tensor,
                         attention_mask: torch.Tensor,
                         pixel_values: Optional[torch.Tensor] = None,
                         num_images: Optional[Sequence[int]] = None,
                         data_samples: Optional[list] = None,
                         image_sizes: Optional[torch.Tensor] = None,
                         warn_when_cut: bool = True,
                         **generation_kwargs) -> list[str]:
        """Generate an answer per prompt, decoded and cut at the template's
        stop text. An answer that reached the token budget before its end
        says so (:class:`GeneratedText` ``.cut``, and one warning per call
        naming the samples).

        Prompts are left-padded after the splice and decoded with the KV
        cache, so a sample's answer does not depend on its batch.

        Args:
            input_ids, attention_mask, pixel_values, num_images,
                image_sizes: As the data preprocessor returns them
                (right-padded prompts).
            data_samples (list, optional): Named in errors.
            warn_when_cut (bool): Whether to log the warning about cut
                answers (a caller that shows ``.cut`` itself turns it off).
                Defaults to True.
            **generation_kwargs: Override ``generation_cfg`` for this call
                (e.g. ``max_new_tokens``, ``streamer``).
        """
        return self.generate_from(
            LLaVAInputs(input_ids, attention_mask, None, pixel_values,
                        num_images, image_sizes, data_samples),
            warn_when_cut, **generation_kwargs)

    @torch.no_grad()
    def generate_from(self, inputs: LLaVAInputs, warn_when_cut: bool = True,
                      **generation_kwargs) -> list[str]:
        """:meth:`generate_answers` on :class:`LLaVAInputs` (their labels,
        if any, are ignored)."""
        config = {**self.generation_cfg, **generation_kwargs}
        # A stop text other than EOS (``plain`` stops at a newline) ends
        # generation early instead of running to max_new_tokens.
        if self.template.stop != self.tokenizer.eos_token:
            config.setdefault('stop_strings', [self.template.stop])
            config.setdefault('tokenizer', self.tokenizer)
        embeds, mask, _ = self.embed_inputs(inputs.without_labels(), 'left')
        generated = self.llm.generate(
            inputs_embeds=embeds, attention_mask=mask,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id, **config)
        texts = self.tokenizer.batch_decode(
            generated, skip_special_tokens=True)
        rows = generated.tolist()
        cut = [not ended(row, self.tokenizer.decode(row),
                         self.tokenizer.eos_token_id, self.template.stop)
               for row in rows]
        if warn_when_cut and any(cut):
            names = sample_ids(inputs.data_samples) or list(range(len(rows)))
            print_log(
                f'{sum(cut)} of {len(rows)} answers reached the token budget '
                f'(max_new_tokens={config.get("max_new_tokens")}) before '
                'their end and are cut (samples '
                f'{[name for name, is_cut in zip(names, cut) if is_cut]}); '
                'raise max_new_tokens to let them finish.',
                logger='current', level=logging.WARNING)
        return [GeneratedText(cut_at_stop(text, self.template.stop), is_cut)
                for text, is_cut in zip(texts, cut)]
