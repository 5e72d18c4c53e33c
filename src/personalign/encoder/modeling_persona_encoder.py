"""PersonaEncoder: a transformer backbone, pooling, an optional projection and L2 normalisation, as a `PreTrainedModel`.

The DPORE paper's user-embedding extractor G (§3.2): it maps an excerpt of a user's history to a vector, trained so
that excerpts of one persona land close together. `save_pretrained` / `from_pretrained` / `push_to_hub` are the
transformers ones (safetensors); `from_pretrained` also accepts a sentence-transformers folder or Hub id (read by
sentence-transformers itself, then adopted module by module, with its `max_seq_length`, `prompts` and
`default_prompt_name`) or a plain encoder id, used as the backbone.
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

from ..personas.persona import Persona
from ..personas.prompts import render_history

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
        `ValueError`: On an unknown pooling or activation, a non-positive `projection_dim` or `max_seq_length`,
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
                raise ValueError(
                    f"max_length={legacy_max_length} (the old name) and max_seq_length={max_seq_length} disagree; "
                    "set only max_seq_length."
                )
            max_seq_length = legacy_max_length
        if max_seq_length is not None and (
            isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int) or max_seq_length < 1
        ):
            raise ValueError(f"max_seq_length must be a positive integer or None, got {max_seq_length!r}.")
        if prompts is not None and (
            not isinstance(prompts, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items())
        ):
            raise ValueError(f"prompts must be a dict of prompt name -> prompt text (str -> str), got {prompts!r}.")
        if default_prompt_name is not None and default_prompt_name not in (prompts or {}):
            raise ValueError(
                f"default_prompt_name {default_prompt_name!r} is not one of the prompts {sorted(prompts or {})}."
            )
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


def exclude_prompt_tokens(attention_mask: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """A copy of `attention_mask` `(B, T)` with the first `prompt_length` attended tokens of each row set to 0 (and,
    with left padding, the padding before them): sentence-transformers' `Pooling._exclude_prompt_from_mask`."""
    attention_mask = attention_mask.clone()
    pad_lengths = attention_mask.to(torch.int32).argmax(dim=1)
    if pad_lengths.sum() == 0:
        attention_mask[:, :prompt_length] = 0
    else:
        positions = torch.arange(attention_mask.size(1), device=attention_mask.device).unsqueeze(0)
        attention_mask[positions < (pad_lengths + prompt_length).unsqueeze(1)] = 0
    return attention_mask


def pool_token_states(
    states: torch.Tensor, attention_mask: torch.Tensor, mode: str, prompt_length: int | None = None
) -> torch.Tensor:
    """Pool `(B, T, H)` token states into `(B, H)` over the tokens where `attention_mask` `(B, T)` is 1.

    Matches sentence-transformers' `Pooling` for the same mode (left or right padding). `prompt_length` excludes
    that many leading prompt tokens, as `Pooling(include_prompt=False)` does.

    Raises:
        `ValueError`: If `mode` is not one of `POOLING_MODES`.
    """
    if prompt_length:
        attention_mask = exclude_prompt_tokens(attention_mask, prompt_length)
    mask = attention_mask.to(states.dtype).unsqueeze(-1)
    if mode == "cls":
        # The first attended token (position 0 with right padding), as sentence-transformers picks it.
        first = attention_mask.to(torch.int).argmax(dim=1)
        return states[torch.arange(states.shape[0], device=states.device), first]
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
        prompt_length: int | None = None,
        **kwargs: Any,
    ) -> PersonaEncoderOutput:
        """Embed a tokenized batch.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): Token ids.
            attention_mask (`torch.LongTensor` of shape `(batch_size, seq_len)`, *optional*): 1 for real tokens.
            prompt_length (`int`, *optional*): Tokens of a prepended prompt (as `tokenize` reports it); pooling
                skips them when `config.include_prompt` is `False`, and ignores it otherwise.

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
        skip = prompt_length if not self.config.include_prompt else None
        embeddings = pool_token_states(states, attention_mask, self.config.pooling, skip)
        if self.projection is not None:
            embeddings = self.projection_activation(self.projection(embeddings))
        if self.config.normalize:
            embeddings = nn.functional.normalize(embeddings, p=2, dim=-1)
        return PersonaEncoderOutput(embeddings=embeddings, last_hidden_state=states)

    # ------------------------------------------------------------------------------------------------ encoding
    @property
    def max_seq_length(self) -> int | None:
        """Token limit of `encode`, prompt included: `config.max_seq_length`, else the tokenizer's limit capped at
        the backbone's positions (sentence-transformers' rule). Settable, like `SentenceTransformer.max_seq_length`."""
        if self.config.max_seq_length:
            return self.config.max_seq_length
        limits = [getattr(self.config.backbone_config, "max_position_embeddings", None)]
        if self.tokenizer is not None:
            limits.append(self.tokenizer.model_max_length)
        limits = [int(limit) for limit in limits if limit and 0 < limit < 1_000_000]
        return min(limits) if limits else None

    @max_seq_length.setter
    def max_seq_length(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"max_seq_length must be a positive integer or None, got {value!r}.")
        self.config.max_seq_length = value

    def resolve_prompt(self, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The prompt `encode` prepends: `prompt` itself, else `config.prompts[prompt_name]`, else the default
        prompt, else `""` (sentence-transformers' order; an explicit `prompt=""` turns the default off).

        Raises:
            `ValueError`: If both are given (sentence-transformers only warns), or `prompt_name` is not a prompt.
        """
        prompts = self.config.prompts or {}
        if prompt is not None:
            if prompt_name is not None:
                raise ValueError(f"pass prompt or prompt_name, not both (got {prompt!r} and {prompt_name!r}).")
            return prompt
        if prompt_name is not None:
            if prompt_name not in prompts:
                raise ValueError(
                    f"prompt_name {prompt_name!r} is not one of this encoder's prompts {sorted(prompts)}."
                )
            return prompts[prompt_name]
        if self.config.default_prompt_name is not None:
            return prompts[self.config.default_prompt_name]
        return ""

    def tokenize(self, texts: str | Sequence[str], prompt_name: str | None = None, prompt: str | None = None) -> Any:
        """Tokenize texts exactly as `encode` does: the resolved prompt prepended, padded, truncated to
        `max_seq_length` (prompt included), as `torch` tensors. Use it to run `forward` with gradients.

        Returns:
            `BatchEncoding`: `input_ids` and `attention_mask` of shape `(len(texts), seq_len)` (plus whatever else
            the tokenizer returns), and `prompt_length` (an `int`) when a prompt was prepended.

        Raises:
            `ValueError`: Without a tokenizer, or on a bad prompt (see `resolve_prompt`).
        """
        tokenizer = self._require_tokenizer()
        texts = [texts] if isinstance(texts, str) else list(texts)
        prefix = self.resolve_prompt(prompt_name, prompt)
        if prefix:
            texts = [prefix + text for text in texts]
        features = tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt")
        if prefix:
            features["prompt_length"] = self._prompt_length(prefix)
        return features

    def _prompt_length(self, prompt: str) -> int:
        # sentence-transformers' Transformer._get_prompt_length: the prompt tokenized alone, less a trailing special
        # token (the [SEP] that would follow it alone, not the text that follows it in use).
        tokenizer = self._require_tokenizer()
        ids = tokenizer([prompt], truncation=True, max_length=self.max_seq_length)["input_ids"][0]
        length = len(ids)
        if ids and ids[-1] in set(tokenizer.all_special_ids):
            length -= 1
        return length

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
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_tensor: bool = False,
        device: str | torch.device | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed texts, batched, longest first (so padding is minimal), in inference mode.

        Prompts work as in `SentenceTransformer.encode`: the prompt is prepended to every text before tokenization
        (so it counts in `max_seq_length`), and its tokens are pooled unless `config.include_prompt` is `False`.

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
            `ValueError`: Without a tokenizer, with both `prompt` and `prompt_name`, or an unknown `prompt_name`.
        """
        self._require_tokenizer()
        prefix = self.resolve_prompt(prompt_name, prompt)  # fail before any work
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
            features = self.tokenize(batch, prompt=prefix).to(self.device)
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
                `modules.json` is read by sentence-transformers and adopted (Transformer, Pooling, Dense, Normalize,
                with its `max_seq_length`, `prompts` and `default_prompt_name`); a `persona_encoder` config loads
                natively (an old config's `max_length` is read as `max_seq_length`); anything else is an
                `AutoModel` backbone.
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
        Normalize. The modules are adopted, not copied: training either object trains both. Its `max_seq_length`,
        `prompts`, `default_prompt_name` and the pooling's `include_prompt` are kept, so `encode` matches
        `model.encode`.

        Raises:
            `ValueError`: On other modules, a pooling mode or Dense activation a PersonaEncoder lacks, or a
                `truncate_dim` (a PersonaEncoder does not truncate embeddings).
        """
        from sentence_transformers.base.modules import Dense, Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling

        modules = list(model.children())
        kinds = [type(module).__name__ for module in modules]
        expected = "Transformer, Pooling, [Dense], [Normalize]"
        if not modules or not isinstance(modules[0], Transformer):
            raise ValueError(f"a PersonaEncoder needs a sentence-transformers model of {expected}; got {kinds}.")
        transformer, rest = modules[0], modules[1:]
        pooling, dense, normalize = "cls", None, False
        include_prompt = True
        if rest and isinstance(rest[0], Pooling):
            include_prompt = bool(getattr(rest[0], "include_prompt", True))
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
        if getattr(model, "truncate_dim", None) is not None:
            raise ValueError(
                f"this sentence-transformers model truncates embeddings to {model.truncate_dim} dimensions, which a "
                "PersonaEncoder does not do; load it with truncate_dim=None (or add a Dense projection)."
            )
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
            max_seq_length=model.max_seq_length,
            prompts=dict(model.prompts) if model.prompts else None,
            default_prompt_name=model.default_prompt_name,
            include_prompt=include_prompt,
        )
        encoder = cls(config, backbone=transformer.model, tokenizer=transformer.tokenizer)
        if dense is not None:
            encoder.projection = dense.linear
        return encoder.to(transformer.model.device)

    def to_sentence_transformer(self) -> SentenceTransformer:
        """This encoder as a `SentenceTransformer` (Transformer, Pooling, [Dense], [Normalize]) computing the same
        embeddings, with the same `max_seq_length`, `prompts` and `default_prompt_name`. The result owns a copy of the
        weights; `share_modules_with` makes this encoder use them."""
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.base.modules import Dense, Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling

        tokenizer = self._require_tokenizer()
        with tempfile.TemporaryDirectory(prefix="personalign-encoder-") as folder:
            self.backbone.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            transformer = Transformer(folder, max_seq_length=self.max_seq_length)
        pooling = Pooling(
            self.config.backbone_config.hidden_size, self.config.pooling, include_prompt=self.config.include_prompt
        )
        modules: list[nn.Module] = [transformer, pooling]
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
        return SentenceTransformer(
            modules=modules,
            device=str(self.device),
            prompts=dict(self.config.prompts) if self.config.prompts else None,
            default_prompt_name=self.config.default_prompt_name,
        )

    def share_modules_with(self, model: SentenceTransformer) -> None:
        """Use `model`'s backbone (and Dense layer) in place of this encoder's own, so that training `model`
        trains this encoder. `model` must come from `to_sentence_transformer()` of an equal configuration."""
        adopted = type(self).from_sentence_transformer(model)
        mine = self.config.to_diff_dict()
        theirs = adopted.config.to_diff_dict()
        for key in ("pooling", "projection_dim", "projection_activation", "normalize", "include_prompt"):
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
