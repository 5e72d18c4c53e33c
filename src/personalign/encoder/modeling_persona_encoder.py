"""PersonaEncoder: a transformer backbone, pooling, an optional projection and L2 normalisation, as a `PreTrainedModel`.

The DPORE seed's user-embedding extractor G (§3.2): it maps an excerpt of a user's history to a vector, trained so
that excerpts of one persona land close together. `save_pretrained` / `from_pretrained` / `push_to_hub` are the
transformers ones (safetensors); `from_pretrained` also accepts a sentence-transformers folder or Hub id (read by
sentence-transformers itself, then adopted module by module) or a plain encoder id, used as the backbone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from ..personas import Persona, render_history

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken")
PROJECTION_ACTIVATIONS = {"identity": nn.Identity, "tanh": nn.Tanh}
# Progress bars appear by default only when encoding takes more than a handful of batches.
PROGRESS_BAR_MIN_BATCHES = 8


class PersonaEncoderConfig(PretrainedConfig):
    r"""Configuration of a [`PersonaEncoder`].

    Args:
        backbone_config (`PretrainedConfig` or `dict`, *optional*):
            Configuration of the transformer backbone (any `AutoModel` encoder, e.g. BERT or MiniLM).
        pooling (`str`, *optional*, defaults to `"mean"`):
            How token states become one vector: `"mean"` (over non-padding tokens), `"cls"`, `"max"`,
            `"mean_sqrt_len_tokens"` or `"lasttoken"` (the sentence-transformers modes of the same names).
        projection_dim (`int`, *optional*):
            Output size of a linear projection after pooling. `None` keeps the backbone's hidden size.
        projection_activation (`str`, *optional*, defaults to `"identity"`):
            Activation after the projection: `"identity"` or `"tanh"` (sentence-transformers' `Dense` default).
        projection_bias (`bool`, *optional*, defaults to `True`):
            Whether the projection has a bias.
        normalize (`bool`, *optional*, defaults to `True`):
            L2-normalise the output, so dot products are cosine similarities.
        max_length (`int`, *optional*):
            Token limit for `encode`; defaults to the tokenizer's limit capped at the backbone's positions.
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
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(backbone_config, dict):
            backbone_config = AutoConfig.for_model(**backbone_config)
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")
        if projection_activation not in PROJECTION_ACTIVATIONS:
            raise ValueError(
                f"projection_activation must be one of {tuple(PROJECTION_ACTIVATIONS)}, got {projection_activation!r}."
            )
        if projection_dim is not None and projection_dim < 1:
            raise ValueError(f"projection_dim must be a positive integer or None, got {projection_dim}.")
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
        self.max_length = max_length
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


def pool_token_states(states: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool `(B, T, H)` token states into `(B, H)` over the tokens where `attention_mask` is 1.

    Matches sentence-transformers' `Pooling` for the same mode (left or right padding for `"lasttoken"`).
    """
    mask = attention_mask.to(states.dtype).unsqueeze(-1)
    if mode == "cls":
        return states[:, 0]
    if mode == "max":
        floor = torch.finfo(states.dtype).min
        return states.masked_fill(mask == 0, floor).max(dim=1).values
    if mode == "lasttoken":
        # The last attended position of each row: the highest index whose mask is 1.
        positions = torch.arange(states.shape[1], device=states.device)
        last = (attention_mask * positions).argmax(dim=1)
        return states[torch.arange(states.shape[0], device=states.device), last]
    summed = (states * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    if mode == "mean":
        return summed / counts
    if mode == "mean_sqrt_len_tokens":
        return summed / counts.sqrt()
    raise ValueError(f"pooling must be one of {POOLING_MODES}, got {mode!r}.")


def persona_document(persona: Persona, include_demographics: bool = True) -> str:
    """The text `PersonaEncoder.encode_persona` embeds: the persona's history rendered by
    `personas.render_history` (its comments, then its chosen/rejected pairs, then the demographic description),
    the same rendering the excerpt datasets use for single items."""
    return render_history(persona, include_demographics=include_demographics)


class PersonaEncoder(PreTrainedModel):
    r"""Contrastive persona encoder: backbone -> pooling -> optional projection -> L2 normalisation.

    Load it like any transformers model; the tokenizer travels with it (`encoder.tokenizer`) and is saved by
    `save_pretrained`.

    ```python
    from personalign import PersonaEncoder

    encoder = PersonaEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")  # ST layout or plain encoder
    vectors = encoder.encode(["I like short answers.", "Tell me every detail."], batch_size=64)
    encoder.save_pretrained("my-persona-encoder")
    ```

    Args:
        config ([`PersonaEncoderConfig`]): The configuration.
        backbone (`PreTrainedModel`, *optional*): An already loaded backbone to use instead of a fresh one built from
            `config.backbone_config` (its weights are kept as they are).
        tokenizer (*optional*): The backbone's tokenizer.
    """

    config_class = PersonaEncoderConfig
    base_model_prefix = "persona_encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: PersonaEncoderConfig, backbone: PreTrainedModel | None = None, tokenizer: Any = None):
        if backbone is not None:
            config.backbone_config = backbone.config
        super().__init__(config)
        if config.backbone_config is None:
            raise ValueError("PersonaEncoderConfig.backbone_config is required to build a PersonaEncoder.")
        self.backbone = backbone if backbone is not None else AutoModel.from_config(config.backbone_config)
        self.projection = (
            nn.Linear(config.backbone_config.hidden_size, config.projection_dim, bias=config.projection_bias)
            if config.projection_dim
            else None
        )
        self.projection_activation = PROJECTION_ACTIVATIONS[config.projection_activation]()
        self.tokenizer = tokenizer
        self._backbone_inputs: set[str] | None = None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # Only the projection is ours; the backbone initialises (or has loaded) its own weights.
        if module is self.projection:
            std = getattr(self.config.backbone_config, "initializer_range", 0.02)
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def _backbone_kwargs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        if self._backbone_inputs is None:
            import inspect

            self._backbone_inputs = set(inspect.signature(self.backbone.forward).parameters)
        return {key: value for key, value in inputs.items() if key in self._backbone_inputs and value is not None}

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        **kwargs: Any,
    ) -> PersonaEncoderOutput:
        """Embed a tokenized batch.

        Returns:
            [`PersonaEncoderOutput`]: `embeddings` of shape `(batch_size, embedding_dim)` and the backbone's states.
        """
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
            "inputs_embeds": inputs_embeds,
            **kwargs,
        }
        states = self.backbone(**self._backbone_kwargs(inputs)).last_hidden_state
        if attention_mask is None:
            attention_mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
        embeddings = pool_token_states(states, attention_mask, self.config.pooling)
        if self.projection is not None:
            embeddings = self.projection_activation(self.projection(embeddings))
        if self.config.normalize:
            embeddings = nn.functional.normalize(embeddings, p=2, dim=-1)
        return PersonaEncoderOutput(embeddings=embeddings, last_hidden_state=states)

    # ------------------------------------------------------------------------------------------------ encoding
    @property
    def max_length(self) -> int | None:
        if self.config.max_length:
            return self.config.max_length
        limits = [getattr(self.config.backbone_config, "max_position_embeddings", None)]
        if self.tokenizer is not None:
            limits.append(self.tokenizer.model_max_length)
        limits = [int(limit) for limit in limits if limit and 0 < limit < 1_000_000]
        return min(limits) if limits else None

    def _require_tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise ValueError(
                "This PersonaEncoder has no tokenizer: load it with PersonaEncoder.from_pretrained(...) or set "
                "`encoder.tokenizer = AutoTokenizer.from_pretrained(...)` before calling encode()."
            )
        return self.tokenizer

    @torch.inference_mode()
    def encode(
        self,
        texts: str | Sequence[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts, batched, longest first (so padding is minimal), in inference mode.

        Args:
            texts (`str` or `list[str]`): One text or a list of texts.
            batch_size (`int`, *optional*, defaults to `32`): Texts per forward pass.
            show_progress_bar (`bool`, *optional*): A progress bar; by default shown when there are more than
                8 batches.
            convert_to_tensor (`bool`, *optional*, defaults to `False`): Return a `torch.Tensor` on the model's
                device instead of a float32 `numpy` array.
            device (`str` or `torch.device`, *optional*): Move the model there first.

        Returns:
            `np.ndarray` or `torch.Tensor`: Shape `(len(texts), embedding_dim)`, or `(embedding_dim,)` for one string.
        """
        tokenizer = self._require_tokenizer()
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if device is not None:
            self.to(device)
        was_training = self.training
        self.eval()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        starts = range(0, len(texts), batch_size)
        if show_progress_bar is None:
            show_progress_bar = len(starts) > PROGRESS_BAR_MIN_BATCHES
        if show_progress_bar:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="Encoding", unit="batch")
        chunks = []
        for start in starts:
            batch = [texts[i] for i in order[start : start + batch_size]]
            features = tokenizer(
                batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            chunks.append(self(**features).embeddings.float())
        self.train(was_training)
        hidden = self.config.embedding_dim
        sorted_embeddings = torch.cat(chunks) if chunks else torch.empty(0, hidden, device=self.device)
        embeddings = torch.empty_like(sorted_embeddings)
        embeddings[torch.tensor(order, device=self.device, dtype=torch.long)] = sorted_embeddings
        if single:
            embeddings = embeddings[0]
        return embeddings if convert_to_tensor else embeddings.cpu().numpy()

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

    # ----------------------------------------------------------------------------------------- save / load
    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> None:
        """`PreTrainedModel.save_pretrained` (safetensors), plus the tokenizer when there is one."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)

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
        """Load a PersonaEncoder, a sentence-transformers model, or a plain encoder used as the backbone.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): A local folder or a Hub id. A folder with a
                `modules.json` is read by sentence-transformers and adopted (Transformer, Pooling, Dense, Normalize);
                a `persona_encoder` config loads natively; anything else is an `AutoModel` backbone.
            pooling, projection_dim, normalize: Settings for a new encoder around a plain backbone (ignored, and
                refused if they conflict, for saved PersonaEncoders and sentence-transformers models).
            **kwargs: Passed to the transformers / sentence-transformers loaders (`revision`, `token`, `dtype`, ...).
        """
        name = str(pretrained_model_name_or_path)
        new_settings = {"pooling": pooling, "projection_dim": projection_dim, "normalize": normalize}
        new_settings = {key: value for key, value in new_settings.items() if value is not None}
        if _is_sentence_transformers_model(name, kwargs):
            _refuse_settings(name, new_settings, "a sentence-transformers model")
            from sentence_transformers import SentenceTransformer

            st_kwargs = {key: kwargs[key] for key in ("revision", "token", "cache_folder", "device") if key in kwargs}
            return cls.from_sentence_transformer(SentenceTransformer(name, **st_kwargs))
        config = AutoConfig.from_pretrained(name, **_hub_kwargs(kwargs))
        if isinstance(config, PersonaEncoderConfig):
            _refuse_settings(name, new_settings, "a saved PersonaEncoder")
            encoder = super().from_pretrained(name, *model_args, **kwargs)
            encoder.tokenizer = _optional_tokenizer(name, kwargs)
            return encoder
        backbone = AutoModel.from_pretrained(name, *model_args, **kwargs)
        encoder = cls(PersonaEncoderConfig(backbone_config=backbone.config, **new_settings), backbone=backbone)
        encoder.tokenizer = _optional_tokenizer(name, kwargs)
        return encoder

    # ------------------------------------------------------------------------------ sentence-transformers
    @classmethod
    def from_sentence_transformer(cls, model: SentenceTransformer) -> PersonaEncoder:
        """Wrap a loaded `SentenceTransformer` whose modules are Transformer, Pooling and optionally Dense and
        Normalize. The modules are adopted, not copied: training either object trains both."""
        from sentence_transformers.base.modules import Dense, Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling

        modules = list(model.children())
        kinds = [type(module).__name__ for module in modules]
        expected = "Transformer, Pooling, [Dense], [Normalize]"
        if not modules or not isinstance(modules[0], Transformer):
            raise ValueError(f"a PersonaEncoder needs a sentence-transformers model of {expected}; got {kinds}.")
        transformer, rest = modules[0], modules[1:]
        pooling, dense, normalize = "cls", None, False
        if rest and isinstance(rest[0], Pooling):
            mode = rest.pop(0).pooling_mode
            if not isinstance(mode, str) or mode not in POOLING_MODES or (rest and isinstance(rest[0], Pooling)):
                raise ValueError(f"unsupported sentence-transformers pooling {mode!r}: use one of {POOLING_MODES}.")
            pooling = mode
        if rest and isinstance(rest[0], Dense):
            dense = rest.pop(0)
        if rest and isinstance(rest[0], Normalize):
            rest.pop(0)
            normalize = True
        if rest:
            raise ValueError(f"a PersonaEncoder needs a sentence-transformers model of {expected}; got {kinds}.")
        activation = "identity"
        if dense is not None:
            activation = _activation_name(dense.activation_function)
        config = PersonaEncoderConfig(
            backbone_config=transformer.model.config,
            pooling=pooling,
            projection_dim=dense.linear.out_features if dense is not None else None,
            projection_activation=activation,
            projection_bias=dense.linear.bias is not None if dense is not None else True,
            normalize=normalize,
            max_length=model.max_seq_length,
        )
        encoder = cls(config, backbone=transformer.model, tokenizer=transformer.tokenizer)
        if dense is not None:
            encoder.projection = dense.linear
        return encoder.to(transformer.model.device)

    def to_sentence_transformer(self) -> SentenceTransformer:
        """This encoder as a `SentenceTransformer` (Transformer, Pooling, [Dense], [Normalize]) computing the same
        embeddings. The result owns a copy of the weights; `share_modules_with` makes this encoder use them."""
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.base.modules import Dense, Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling

        tokenizer = self._require_tokenizer()
        with tempfile.TemporaryDirectory(prefix="personalign-encoder-") as folder:
            self.backbone.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            transformer = Transformer(folder, max_seq_length=self.max_length)
        modules: list[nn.Module] = [transformer, Pooling(self.config.backbone_config.hidden_size, self.config.pooling)]
        if self.projection is not None:
            dense = Dense(
                self.projection.in_features,
                self.projection.out_features,
                bias=self.projection.bias is not None,
                activation_function=PROJECTION_ACTIVATIONS[self.config.projection_activation](),
            )
            dense.linear.load_state_dict(self.projection.state_dict())
            modules.append(dense)
        if self.config.normalize:
            modules.append(Normalize())
        return SentenceTransformer(modules=modules, device=str(self.device))

    def share_modules_with(self, model: SentenceTransformer) -> None:
        """Use `model`'s backbone (and Dense layer) in place of this encoder's own, so that training `model`
        trains this encoder. `model` must come from `to_sentence_transformer()` of an equal configuration."""
        adopted = type(self).from_sentence_transformer(model)
        mine = self.config.to_diff_dict()
        theirs = adopted.config.to_diff_dict()
        for key in ("pooling", "projection_dim", "projection_activation", "normalize"):
            if mine.get(key) != theirs.get(key):
                raise ValueError(f"cannot share modules: {key} is {mine.get(key)!r} here, {theirs.get(key)!r} there.")
        self.backbone = adopted.backbone
        self.projection = adopted.projection
        self._backbone_inputs = None


def _hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    keys = ("revision", "token", "cache_dir", "local_files_only", "subfolder", "trust_remote_code")
    return {key: kwargs[key] for key in keys if key in kwargs}


def _is_sentence_transformers_model(name: str, kwargs: dict[str, Any]) -> bool:
    if os.path.isdir(name):
        return os.path.isfile(os.path.join(name, "modules.json"))
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        hf_hub_download(name, "modules.json", **{k: v for k, v in _hub_kwargs(kwargs).items() if k != "subfolder"})
    except EntryNotFoundError:
        return False
    return True


def _optional_tokenizer(name: str, kwargs: dict[str, Any]) -> Any:
    try:
        return AutoTokenizer.from_pretrained(name, **_hub_kwargs(kwargs))
    except (OSError, ValueError):
        # An encoder saved without a tokenizer still loads; encode() then asks for one.
        return None


def _refuse_settings(name: str, settings: dict[str, Any], kind: str) -> None:
    if settings:
        raise ValueError(
            f"{name} is {kind}: its pooling / projection / normalisation are fixed by its files, "
            f"so {sorted(settings)} cannot be set when loading it."
        )


def _activation_name(activation: nn.Module) -> str:
    for name, kind in PROJECTION_ACTIVATIONS.items():
        if type(activation) is kind:
            return name
    raise ValueError(
        f"unsupported Dense activation {type(activation).__name__}: a PersonaEncoder projection supports "
        f"{tuple(PROJECTION_ACTIVATIONS)}."
    )


AutoConfig.register(PersonaEncoderConfig.model_type, PersonaEncoderConfig, exist_ok=True)
AutoModel.register(PersonaEncoderConfig, PersonaEncoder, exist_ok=True)
