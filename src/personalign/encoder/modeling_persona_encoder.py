"""PersonaEncoder: sentence-transformers' Transformer, Pooling, optional Dense and Normalize, as a `PreTrainedModel`.

The DPORE paper's user-embedding extractor G (§3.2): it maps an excerpt of a user's history to a vector, trained so
that excerpts of one persona land close together. Its modules are sentence-transformers' own, so tokenization,
prompts, pooling, projection and normalisation have one implementation; this class gives them a transformers face
(`PersonaEncoderConfig`, `AutoModel` registration, `from_pretrained` / `save_pretrained` / `push_to_hub`, a `forward`
returning a `ModelOutput`) and the persona-specific helpers (`encode_persona`).

A saved PersonaEncoder is a sentence-transformers folder (`modules.json`; `config_sentence_transformers.json` with the
prompts; `0_Transformer/` with the backbone, its tokenizer and safetensors weights; `1_Pooling/`; `2_Dense/` with a
projection; a `Normalize` folder when it normalises) plus the PersonaEncoder's own `config.json` at the root. Both
`PersonaEncoder.from_pretrained(path)` and `SentenceTransformer(path)` load it and embed alike, prompts and
normalisation included. `from_pretrained` also reads any sentence-transformers model of those modules (folder or Hub
id) and turns a plain encoder (`AutoModel`) into the backbone of a new PersonaEncoder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Dense, Normalize, Transformer
from sentence_transformers.sentence_transformer.modules import Pooling
from torch import nn
from transformers import AutoConfig, AutoModel, BatchEncoding, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from ..errors import InputError
from ..personas.persona import Persona
from ..personas.prompts import render_history

POOLING_MODES = Pooling.POOLING_MODES
PROJECTION_ACTIVATIONS = {"identity": nn.Identity, "tanh": nn.Tanh}
# Progress bars appear by default only when encoding takes more than a handful of batches.
PROGRESS_BAR_MIN_BATCHES = 8
# Loading arguments that locate files (transformers' names); everything else goes to the backbone's `from_pretrained`.
HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "subfolder", "trust_remote_code")


class PersonaEncoderConfig(PretrainedConfig):
    r"""Configuration of a [`PersonaEncoder`].

    Args:
        backbone_config (`PretrainedConfig` or `dict`, *optional*):
            Configuration of the transformer backbone (any `AutoModel` encoder, e.g. BERT or MiniLM).
        pooling (`str`, *optional*, defaults to `"mean"`):
            How token states become one vector: a sentence-transformers `Pooling` mode (`"mean"` over non-padding
            tokens, `"cls"`, `"max"`, `"mean_sqrt_len_tokens"`, `"weightedmean"` or `"lasttoken"`).
        projection_dim (`int`, *optional*):
            Output size of a projection after pooling (a sentence-transformers `Dense`). `None` keeps the
            backbone's hidden size.
        projection_activation (`str`, *optional*, defaults to `"identity"`):
            Activation after the projection: `"identity"` or `"tanh"` (sentence-transformers' `Dense` default).
        projection_bias (`bool`, *optional*, defaults to `True`):
            Whether the projection has a bias.
        normalize (`bool`, *optional*, defaults to `True`):
            L2-normalise the output (a sentence-transformers `Normalize`), so dot products are cosine similarities.
        max_seq_length (`int`, *optional*):
            Token limit of `encode` (prompt included, as in sentence-transformers); defaults to the tokenizer's limit
            capped at the backbone's positions. Configs saved before the rename hold it as `max_length`, a
            generation-parameter name that transformers >= 5.24 refuses to save; it is read as `max_seq_length`.
        prompts (`dict[str, str]`, *optional*):
            Named prompts that `encode(texts, prompt_name=...)` prepends to every text, as sentence-transformers'
            `prompts` (e.g. `{"query": "query: "}`); adopted from a sentence-transformers model.
        default_prompt_name (`str`, *optional*):
            The prompt `encode` applies when given neither `prompt_name` nor `prompt`; must be a key of `prompts`.
        include_prompt (`bool`, *optional*, defaults to `True`):
            Whether prompt tokens count in pooling (sentence-transformers' `Pooling(include_prompt=...)`).

    Raises:
        `InputError`: On an unknown pooling or activation, a non-positive `projection_dim` or `max_seq_length`,
            `max_length` and `max_seq_length` that disagree, prompts that are not a `str -> str` mapping, or a
            `default_prompt_name` that is not one of them.
    """

    model_type = "persona_encoder"
    sub_configs: ClassVar[dict[str, Any]] = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config: PretrainedConfig | dict | None = None,
        pooling: str = "mean",
        projection_dim: int | None = None,
        projection_activation: str = "identity",
        projection_bias: bool = True,
        normalize: bool = True,
        max_seq_length: int | None = None,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        include_prompt: bool = True,
        **kwargs: Any,
    ) -> None:
        # Configs saved before the rename say `max_length`; it must never reach PretrainedConfig, whose save refuses
        # generation-parameter names.
        legacy_max_length = kwargs.pop("max_length", None)
        if legacy_max_length is not None:
            if max_seq_length is not None and max_seq_length != legacy_max_length:
                raise InputError(
                    f"max_length={legacy_max_length} (the old name) and max_seq_length={max_seq_length} disagree; "
                    "set only max_seq_length."
                )
            max_seq_length = legacy_max_length
        if max_seq_length is not None and (
            isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) or max_seq_length < 1
        ):
            raise InputError(f"max_seq_length must be a positive integer or None, got {max_seq_length!r}.")
        if prompts is not None and (
            not isinstance(prompts, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items())
        ):
            raise InputError(f"prompts must be a dict of prompt name -> prompt text (str -> str), got {prompts!r}.")
        if default_prompt_name is not None and default_prompt_name not in (prompts or {}):
            raise InputError(
                f"default_prompt_name {default_prompt_name!r} is not one of the prompts {sorted(prompts or {})}."
            )
        if isinstance(backbone_config, dict):
            backbone_config = AutoConfig.for_model(**backbone_config)
        if pooling not in POOLING_MODES:
            raise InputError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
        if projection_activation not in PROJECTION_ACTIVATIONS:
            raise InputError(
                f"projection_activation must be one of {tuple(PROJECTION_ACTIVATIONS)}, got {projection_activation!r}."
            )
        if projection_dim is not None and projection_dim < 1:
            raise InputError(f"projection_dim must be a positive integer or None, got {projection_dim}.")
        if isinstance(backbone_config, PretrainedConfig):
            # The attention implementation propagates to sub-configs: keep the backbone's (e.g. sdpa) instead of
            # resetting it to None, which silently changes a loaded backbone's numerics.
            kwargs.setdefault("attn_implementation", backbone_config._attn_implementation)
        self.backbone_config = backbone_config
        self.pooling = pooling
        self.projection_dim = projection_dim
        self.projection_activation = projection_activation
        self.projection_bias = projection_bias
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.prompts = dict(prompts) if prompts is not None else None
        self.default_prompt_name = default_prompt_name
        self.include_prompt = bool(include_prompt)
        super().__init__(**kwargs)

    @property
    def embedding_dim(self) -> int:
        return self.projection_dim or self.backbone_config.hidden_size


@dataclass
class PersonaEncoderOutput(ModelOutput):
    """Output of [`PersonaEncoder.forward`].

    Args:
        embeddings (`torch.FloatTensor` of shape `(batch_size, embedding_dim)`): The persona embeddings.
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, seq_len, hidden_size)`): The backbone's states.
    """

    embeddings: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None


def persona_document(persona: Persona, include_demographics: bool = True) -> str:
    """The text `PersonaEncoder.encode_persona` embeds: the persona's history rendered by
    `personas.render_history` (its comments, then its chosen/rejected pairs, then the demographic description),
    the same rendering the excerpt datasets use for single items."""
    return render_history(persona, include_demographics=include_demographics)


class PersonaEncoder(PreTrainedModel):
    r"""Contrastive persona encoder: backbone -> pooling -> optional projection -> L2 normalisation, each step a
    sentence-transformers module (`transformer`, `pooling`, `projection`, `normalization`).

    Load it like any transformers model; the backbone (`encoder.backbone`) and its tokenizer (`encoder.tokenizer`)
    live in the `transformer` module.

    ```python
    from personalign import PersonaEncoder

    encoder = PersonaEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")  # ST model or plain encoder
    vectors = encoder.encode(["I like short answers.", "Tell me every detail."], batch_size=64)
    encoder.save_pretrained("my-persona-encoder")  # SentenceTransformer("my-persona-encoder") reads it too
    ```

    Args:
        config ([`PersonaEncoderConfig`]): The configuration; `pooling`, `projection_*` and `normalize` build the
            modules after the backbone, and `max_seq_length` (when set) becomes the transformer's.
        transformer (`sentence_transformers.base.modules.Transformer`): The loaded backbone and tokenizer. A
            PersonaEncoder cannot be built from a configuration alone (sentence-transformers builds a `Transformer`
            only by loading one): use [`PersonaEncoder.from_pretrained`].

    Raises:
        `InputError`: Without a `transformer`.
    """

    config_class = PersonaEncoderConfig
    base_model_prefix = "persona_encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: PersonaEncoderConfig, transformer: Transformer | None = None) -> None:
        if transformer is None:
            raise InputError(
                "a PersonaEncoder is built around a loaded backbone: use PersonaEncoder.from_pretrained(...) with a "
                "backbone, a sentence-transformers model or a saved PersonaEncoder."
            )
        config.backbone_config = transformer.auto_model.config
        super().__init__(config)
        hidden_size = transformer.get_embedding_dimension()
        self.transformer = transformer
        self.pooling = Pooling(hidden_size, config.pooling, include_prompt=config.include_prompt)
        self.projection = None
        if config.projection_dim:
            activation = PROJECTION_ACTIVATIONS[config.projection_activation]()
            self.projection = Dense(hidden_size, config.projection_dim, config.projection_bias, activation)
        self.normalization = Normalize() if config.normalize else None
        if config.max_seq_length is not None:
            transformer.max_seq_length = config.max_seq_length
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Only a new projection is ours to initialise; the backbone has loaded its weights.
        if self.projection is not None and module is self.projection.linear:
            nn.init.normal_(
                module.weight, mean=0.0, std=getattr(self.config.backbone_config, "initializer_range", 0.02)
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def backbone(self) -> PreTrainedModel:
        """The transformer backbone (`AutoModel`) inside `self.transformer`."""
        return self.transformer.auto_model

    @property
    def tokenizer(self) -> Any:
        """The backbone's tokenizer, inside `self.transformer`."""
        return self.transformer.tokenizer

    def sentence_transformer_modules(self) -> list[nn.Module]:
        """The sentence-transformers modules this encoder runs, in order: Transformer, Pooling, [Dense],
        [Normalize]."""
        return [m for m in (self.transformer, self.pooling, self.projection, self.normalization) if m is not None]

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        prompt_length: int | None = None,
        **kwargs: Any,
    ) -> PersonaEncoderOutput:
        """Embed a tokenized batch (as `tokenize` returns it) through the modules, in order.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): Token ids.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for real tokens.
            token_type_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): Segment ids.
            prompt_length (`int`, *optional*): Tokens of a prepended prompt (as `tokenize` reports it); pooling
                skips them when `config.include_prompt` is `False`, and ignores it otherwise.
            **kwargs: Other features of `tokenize` (`modality`, ...) or backbone inputs (`inputs_embeds`, ...).

        Returns:
            [`PersonaEncoderOutput`]: `embeddings` of shape `(batch_size, embedding_dim)` and the backbone's states.
        """
        features = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "prompt_length": prompt_length,
            **kwargs,
        }
        features = {key: value for key, value in features.items() if value is not None}
        for module in self.sentence_transformer_modules():
            features = module(features)
        return PersonaEncoderOutput(
            embeddings=features["sentence_embedding"], last_hidden_state=features["token_embeddings"]
        )

    # ------------------------------------------------------------------------------------------------ encoding
    @property
    def max_seq_length(self) -> int | None:
        """Token limit of `encode`, prompt included: the transformer module's (its tokenizer's limit, capped at the
        backbone's positions unless `config.max_seq_length` sets it). Settable, like
        `SentenceTransformer.max_seq_length`; setting it also sets `config.max_seq_length`."""
        return self.transformer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"max_seq_length must be a positive integer, got {value!r}.")
        self.config.max_seq_length = value
        self.transformer.max_seq_length = value

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The prompt `encode` prepends: `prompt` itself, else `config.prompts[prompt_name]`, else the default
        prompt, else `""` (sentence-transformers' order; an explicit `prompt=""` turns the default off).

        Raises:
            `InputError`: If both are given (sentence-transformers only warns), or `prompt_name` is not a prompt.
        """
        prompts = self.config.prompts or {}
        if prompt is not None:
            if prompt_name is not None:
                raise InputError(f"pass prompt or prompt_name, not both (got {prompt!r} and {prompt_name!r}).")
            return prompt
        if prompt_name is not None:
            if prompt_name not in prompts:
                raise InputError(
                    f"prompt_name {prompt_name!r} is not one of this encoder's prompts {sorted(prompts)}."
                )
            return prompts[prompt_name]
        if self.config.default_prompt_name is not None:
            return prompts[self.config.default_prompt_name]
        return ""

    def tokenize(
        self, texts: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None
    ) -> BatchEncoding:
        """Tokenize texts exactly as `encode` does (the transformer module's `preprocess`): the resolved prompt
        prepended, padded, truncated to `max_seq_length` (prompt included). Use it to run `forward` with gradients.

        Returns:
            `BatchEncoding`: `input_ids` and `attention_mask` of shape `(len(texts), seq_len)` (plus whatever else
            the tokenizer returns), and `prompt_length` (an `int`) when a prompt was prepended.

        Raises:
            `InputError`: On a bad prompt (see `resolve_prompt`).
        """
        prefix = self.resolve_prompt(prompt_name, prompt)
        texts = [texts] if isinstance(texts, str) else list(texts)
        return BatchEncoding(self.transformer.preprocess(texts, prompt=prefix or None))

    def encode(
        self,
        texts: str | Sequence[str],
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts with `SentenceTransformer.encode` over this encoder's modules (batched longest first, in
        inference mode); the training mode is restored afterwards.

        Args:
            texts (`str` or `list[str]`): One text or a list of texts.
            prompt_name (`str`, *optional*): A key of `config.prompts`. Default: `config.default_prompt_name`.
            prompt (`str`, *optional*): A prompt text to prepend instead (`""`: none, even with a default prompt).
            batch_size (`int`, *optional*, defaults to `32`): Texts per forward pass.
            show_progress_bar (`bool`, *optional*): A progress bar; by default shown when there are more than
                8 batches.
            convert_to_tensor (`bool`, *optional*, defaults to `False`): Return a `torch.Tensor` on the model's
                device instead of a float32 `numpy` array.
            device (`str` or `torch.device`, *optional*): Move the model there first.

        Returns:
            `np.ndarray` or `torch.Tensor`: Shape `(len(texts), embedding_dim)`, or `(embedding_dim,)` for one string.

        Raises:
            `InputError`: With both `prompt` and `prompt_name`, or an unknown `prompt_name`.
        """
        prefix = self.resolve_prompt(prompt_name, prompt)  # fail before any work
        texts = texts if isinstance(texts, str) else list(texts)
        if device is not None:
            self.to(device)
        if isinstance(texts, list) and not texts:
            empty = torch.empty(0, self.config.embedding_dim, device=self.device)
            return empty if convert_to_tensor else empty.cpu().numpy()
        if show_progress_bar is None:
            show_progress_bar = math.ceil(len(texts) / batch_size) > PROGRESS_BAR_MIN_BATCHES
        was_training = self.training
        try:
            embeddings = self.to_sentence_transformer().encode(
                texts,
                prompt=prefix,
                batch_size=batch_size,
                show_progress_bar=show_progress_bar,
                convert_to_tensor=convert_to_tensor,
            )
        finally:
            self.train(was_training)  # sentence-transformers leaves its modules in eval mode
        return embeddings if convert_to_tensor else np.asarray(embeddings, dtype=np.float32)

    def encode_persona(
        self, persona: Persona | Sequence[Persona], include_demographics: bool = True, **encode_kwargs: Any
    ) -> np.ndarray | torch.Tensor:
        """Embed one persona (or a list) through [`persona_document`]: its comments, chosen/rejected pairs and
        demographic description, rendered exactly as the AlignX history sections are.

        Args:
            persona (`Persona` or `list[Persona]`): Persona(s) to embed.
            include_demographics (`bool`, *optional*, defaults to `True`): Include the demographic description.
            **encode_kwargs: Passed to [`PersonaEncoder.encode`].
        """
        if isinstance(persona, Persona):
            return self.encode(persona_document(persona, include_demographics), **encode_kwargs)
        return self.encode([persona_document(p, include_demographics) for p in persona], **encode_kwargs)

    # ------------------------------------------------------------------------------ sentence-transformers
    def to_sentence_transformer(self) -> SentenceTransformer:
        """This encoder as a `SentenceTransformer` over the same module objects (nothing is copied: training, moving
        or saving one does it to the other), with `config.prompts` and `config.default_prompt_name`."""
        return SentenceTransformer(
            modules=self.sentence_transformer_modules(),
            device=str(self.device),
            prompts=dict(self.config.prompts) if self.config.prompts else None,
            default_prompt_name=self.config.default_prompt_name,
        )

    @classmethod
    def from_sentence_transformer(
        cls, model: SentenceTransformer, config: PersonaEncoderConfig | None = None
    ) -> PersonaEncoder:
        """Wrap a loaded `SentenceTransformer` of Transformer, Pooling, [Dense], [Normalize]. Its modules are
        adopted, not copied: training either object trains both. Without `config`, the new configuration keeps the
        model's `max_seq_length`, `prompts`, `default_prompt_name` and pooling `include_prompt`, so `encode` matches
        `model.encode`.

        Args:
            model (`SentenceTransformer`): The model to wrap.
            config ([`PersonaEncoderConfig`], *optional*): The configuration saved with it (a saved PersonaEncoder's
                `config.json`); its module settings must describe the model's modules.

        Raises:
            `InputError`: On other modules, a pooling mode, Dense layer or Normalize a PersonaEncoder config cannot
                describe, a `truncate_dim` (a PersonaEncoder does not truncate embeddings), or a `config` that
                disagrees with the modules.
        """
        children = list(model.children())
        kinds = [type(module).__name__ for module in children]
        rest = list(children)
        transformer = rest.pop(0) if rest and isinstance(rest[0], Transformer) else None
        pooling = rest.pop(0) if rest and isinstance(rest[0], Pooling) else None
        dense = rest.pop(0) if rest and isinstance(rest[0], Dense) else None
        normalization = rest.pop(0) if rest and isinstance(rest[0], Normalize) else None
        if transformer is None or pooling is None or rest:
            raise InputError(
                f"a PersonaEncoder needs a sentence-transformers model of Transformer, Pooling, [Dense], [Normalize]; "
                f"got {kinds}."
            )
        if getattr(model, "truncate_dim", None) is not None:
            raise InputError(
                f"this sentence-transformers model truncates embeddings to {model.truncate_dim} dimensions, which a "
                "PersonaEncoder does not do; load it with truncate_dim=None (or add a Dense projection)."
            )
        settings = _module_settings(pooling, dense, normalization)
        if config is None:
            config = PersonaEncoderConfig(
                backbone_config=transformer.auto_model.config,
                max_seq_length=model.max_seq_length,
                prompts=dict(model.prompts) if model.prompts else None,
                default_prompt_name=model.default_prompt_name,
                **settings,
            )
        differing = {
            key: (getattr(config, key), value) for key, value in settings.items() if getattr(config, key) != value
        }
        if differing:
            raise InputError(
                "config.json and the sentence-transformers modules disagree (config, modules): "
                + ", ".join(f"{key} {ours!r} vs {theirs!r}" for key, (ours, theirs) in differing.items())
            )
        encoder = cls(config, transformer)
        # Adopt the model's own modules, after post_init so that the loaded projection keeps its weights.
        encoder.pooling, encoder.projection, encoder.normalization = pooling, dense, normalization
        return encoder

    # ----------------------------------------------------------------------------------------- save / load
    def save_pretrained(
        self, save_directory: str | os.PathLike, safe_serialization: bool = True, max_shard_size: Any = None
    ) -> None:
        """Write a folder that `PersonaEncoder.from_pretrained` and `SentenceTransformer` both load: the modules in
        sentence-transformers' layout (`SentenceTransformer.save`, with the transformer in `0_Transformer/` because
        the root's `config.json` is this encoder's [`PersonaEncoderConfig`]) and that config.

        Args:
            save_directory (`str` or `os.PathLike`): The folder (created if needed; files in it are replaced).
            safe_serialization (`bool`, *optional*, defaults to `True`): safetensors weights (else pickles).
            max_shard_size: Accepted because `push_to_hub` passes it; sentence-transformers writes one file per
                module.
        """
        folder = Path(save_directory)
        # `save_in_root` is sentence-transformers' documented switch for where the first module's files go.
        self.transformer.save_in_root = False
        try:
            self.to_sentence_transformer().save(
                str(folder), create_model_card=False, safe_serialization=safe_serialization
            )
        finally:
            del self.transformer.save_in_root
        # The modules are what runs: describe them as they are now (e.g. after `set_pooling_include_prompt`).
        self.config.update(_module_settings(self.pooling, self.projection, self.normalization))
        self.config.architectures = [type(self).__name__]
        self.config.save_pretrained(folder)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        pooling: str | None = None,
        projection_dim: int | None = None,
        normalize: bool | None = None,
        **kwargs: Any,
    ) -> PersonaEncoder:
        """Load a saved PersonaEncoder, a sentence-transformers model, or a plain encoder used as the backbone.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A local folder or a Hub id. A folder with a
                `modules.json` (a saved PersonaEncoder, or any sentence-transformers model of Transformer, Pooling,
                [Dense], [Normalize]) is read by sentence-transformers and adopted, with the saved `config.json`
                when it is a PersonaEncoder's (an old config's `max_length` is read as `max_seq_length`); anything
                else is an `AutoModel` backbone with its tokenizer.
            pooling, projection_dim, normalize: Settings for a new encoder around a plain backbone (refused for saved
                PersonaEncoders and sentence-transformers models, whose files fix them).
            **kwargs: `revision`, `token`, `cache_dir`, `local_files_only`, `subfolder`, `trust_remote_code` locate
                the files; `device` places the model (default: CPU, as transformers does); the rest (`dtype`,
                `device_map`, `attn_implementation`, ...) goes to the backbone's `from_pretrained`. `config` (what
                `AutoModel.from_pretrained` passes) is the PersonaEncoder configuration.

        Raises:
            `InputError`: On settings for a saved model, or a PersonaEncoder in the earlier single-file layout
                (config.json and model.safetensors without `modules.json`, unreleased), which is no longer read.
        """
        if model_args:
            raise TypeError(f"PersonaEncoder.from_pretrained takes no positional model arguments, got {model_args}.")
        name = str(pretrained_model_name_or_path)
        new_settings = {"pooling": pooling, "projection_dim": projection_dim, "normalize": normalize}
        new_settings = {key: value for key, value in new_settings.items() if value is not None}
        config = kwargs.pop("config", None)
        device = kwargs.pop("device", None)
        hub = {key: value for key in HUB_KWARGS if (value := kwargs.pop(key, None)) is not None}
        # What AutoModel.from_pretrained adds on its way here (`_from_auto`, an empty `adapter_kwargs`) is not ours.
        model_kwargs = {key: value for key, value in kwargs.items() if not key.startswith("_")}
        if not model_kwargs.get("adapter_kwargs"):
            model_kwargs.pop("adapter_kwargs", None)
        if not isinstance(config, PersonaEncoderConfig):
            config = _saved_config(name, hub)
        if _is_sentence_transformers_model(name, hub):
            if new_settings:
                kind = "a saved PersonaEncoder" if config is not None else "a sentence-transformers model"
                raise InputError(
                    f"{name} is {kind}: its pooling / projection / normalisation are fixed by its files, "
                    f"so {sorted(new_settings)} cannot be set when loading it."
                )
            if device is None and "device_map" not in model_kwargs:
                device = "cpu"  # as transformers loads, not sentence-transformers' "the GPU when there is one"
            model = _load_sentence_transformer(name, hub, device, model_kwargs)
            encoder = cls.from_sentence_transformer(model, config=config)
        elif config is not None:
            raise InputError(
                f"{name} is a PersonaEncoder in the earlier single-file layout (config.json and model.safetensors, no "
                "modules.json), which is no longer read; train it again with this version of personalign."
            )
        else:
            transformer = Transformer(
                name, model_kwargs={**hub, **model_kwargs}, processor_kwargs=dict(hub), config_kwargs=dict(hub)
            )
            encoder = cls(
                PersonaEncoderConfig(backbone_config=transformer.auto_model.config, **new_settings), transformer
            )
            if device is not None:
                encoder.to(device)
        encoder.config.name_or_path = name
        return encoder


def _module_settings(pooling: Pooling, dense: Dense | None, normalization: Normalize | None) -> dict[str, Any]:
    """The [`PersonaEncoderConfig`] fields that describe these sentence-transformers modules (`pooling`,
    `include_prompt`, `projection_*`, `normalize`).

    Raises:
        `InputError`: On modules a PersonaEncoderConfig cannot describe: several pooling modes, a Dense layer with a
            residual, renamed features or another activation than identity / tanh, or a Normalize of other features.
    """
    if not isinstance(pooling.pooling_mode, str):
        raise InputError(f"unsupported pooling {pooling.pooling_mode!r}: a PersonaEncoder pools with one mode.")
    if dense is not None and (dense.use_residual or dense.module_output_name != "sentence_embedding"):
        raise InputError("unsupported Dense layer: a PersonaEncoder projection has no residual and no renaming.")
    if normalization is not None and normalization.module_input_name != "sentence_embedding":
        raise InputError("unsupported Normalize: a PersonaEncoder normalises the sentence embedding.")
    return {
        "pooling": pooling.pooling_mode,
        "include_prompt": bool(pooling.include_prompt),
        "projection_dim": dense.out_features if dense is not None else None,
        "projection_activation": _activation_name(dense.activation_function) if dense is not None else "identity",
        "projection_bias": bool(dense.bias) if dense is not None else True,
        "normalize": normalization is not None,
    }


def _saved_config(name: str, hub: dict[str, Any]) -> PersonaEncoderConfig | None:
    """The PersonaEncoderConfig in `name`'s config.json; `None` without one, or when it is another model's."""
    try:
        config, _ = PersonaEncoderConfig.get_config_dict(
            name, **{k: v for k, v in hub.items() if k != "trust_remote_code"}
        )
    except OSError:
        return None  # e.g. a sentence-transformers folder whose transformer lives in a subfolder
    if config.get("model_type") != PersonaEncoderConfig.model_type:
        return None
    return PersonaEncoderConfig.from_dict(config)


def _is_sentence_transformers_model(name: str, hub: dict[str, Any]) -> bool:
    subfolder = hub.get("subfolder", "")
    if os.path.isdir(name):
        return os.path.isfile(os.path.join(name, subfolder, "modules.json"))
    try:
        hf_hub_download(name, "modules.json", **{key: hub[key] for key in hub if key != "trust_remote_code"})
    except EntryNotFoundError:
        return False
    return True


def _load_sentence_transformer(
    name: str, hub: dict[str, Any], device: str, model_kwargs: dict[str, Any]
) -> SentenceTransformer:
    subfolder = hub.get("subfolder", "")
    path = name
    if os.path.isdir(name):
        path = os.path.join(name, subfolder)
    elif subfolder:
        # SentenceTransformer reads a repository's root; fetch just the subfolder (e.g. a policy's persona_encoder/).
        download = {key: hub[key] for key in ("revision", "token", "cache_dir", "local_files_only") if key in hub}
        path = os.path.join(snapshot_download(name, allow_patterns=[f"{subfolder}/*"], **download), subfolder)
    return SentenceTransformer(
        path,
        device=device,
        revision=hub.get("revision"),
        token=hub.get("token"),
        cache_folder=hub.get("cache_dir"),
        local_files_only=bool(hub.get("local_files_only", False)),
        trust_remote_code=bool(hub.get("trust_remote_code", False)),
        model_kwargs=model_kwargs or None,
    )


def _activation_name(activation: nn.Module) -> str:
    for name, kind in PROJECTION_ACTIVATIONS.items():
        if type(activation) is kind:
            return name
    raise InputError(
        f"unsupported Dense activation {type(activation).__name__}: a PersonaEncoder projection supports "
        f"{tuple(PROJECTION_ACTIVATIONS)}."
    )


AutoConfig.register(PersonaEncoderConfig.model_type, PersonaEncoderConfig, exist_ok=True)
AutoModel.register(PersonaEncoderConfig, PersonaEncoder, exist_ok=True)
