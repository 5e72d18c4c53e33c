"""Tiny local models and tokenizers for tests, benchmarks and the offline demo. Nothing here touches the network.

- `build_chat_tokenizer`: a byte-level BPE tokenizer trained on the spot, with pad / BOS / EOS tokens and a chat
  template for system / user / assistant turns (assistant turns end with EOS and are marked for assistant-only loss).
- `build_tiny_causal_lm`: a random-init Llama-style causal LM plus that tokenizer, saved to a folder, so that
  `AutoModelForCausalLM.from_pretrained(folder)` works and TRL can reload it as a reference model.
- `build_tiny_encoder`: a random-init BERT-style bidirectional encoder and a WordPiece tokenizer (persona encoder).
- `tiny_causal_lm` / `tiny_encoder`: the same, built once per seed into a cache folder and reused.

Builds are deterministic under their seed: the same seed gives the same vocabulary and the same weights.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .data.aloe import ALOEBuildConfig, write_aloe_folder
from .data.multifacet import MultifacetBuildConfig, attach_history, build_multifacet_cf
from .data.synthetic import (
    MULTIFACETED_FEATURES,
    alignx_dataset,
    alignx_rows,
    corpus,
    multifaceted_rows,
    text_banks_fingerprint,
)
from .data.synthetic_aloe import (
    ALOE_FEATURES,
    GENERAL_FEATURES,
    aloe_rows,
    general_preference_rows,
    persona_from_texts,
    simulated_user_message,
    style_agreement_score,
)
from .encoder import PersonaEncoder
from .errors import InputError
from .evaluation.judges.prompts import PERSONA_TAILORING_PROMPT, fill_template
from .evaluation.roleplay.prompts import parse_user_simulator_prompt
from .inference.generation import GenerationBackend
from .io import atomic_output, write_rows
from .personas.persona import Messages, Persona
from .personas.prompts import feedback_generation_messages, feedback_judge_messages, ica_messages, pba_messages

KIT_VERSION = 2
"""Bumped whenever a build changes, so stale cached builds are never reused."""

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<|pad|>", "<|begin|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|end|>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
"""Turns are `<|role|>\\n{content}<|end|>` with nothing in between, so a rendered prompt (with the generation
prompt) is always a token prefix of the prompt plus its completion, and a completion ends exactly at EOS."""

TINY_CAUSAL_LM_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
TINY_ENCODER_CONFIG = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 512,
}


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch, numpy and `random` for a build, then restore them: weight init must not depend on what ran
    before in the process (importing TRL, for one, leaves the global generators in a different state)."""
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def default_cache_dir() -> Path:
    """`$PERSONALIGN_TESTING_CACHE`, else `~/.cache/personalign/testing`."""
    configured = os.environ.get("PERSONALIGN_TESTING_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "personalign" / "testing"


def tokenizer_corpus(seed: int = 0) -> Iterator[str]:
    """The training text for test tokenizers: synthetic data and the library's rendered prompt scaffolding."""

    yield from corpus(seed)
    for row in alignx_rows(8, seed):
        persona = Persona.from_alignx_row(row)
        for messages in (
            ica_messages(row["prompt"], persona),
            pba_messages(row["prompt"], persona.profile_text()),
            feedback_generation_messages(persona.pairs, row["prompt"]),
            feedback_judge_messages(persona.pairs, row["prompt"], row["chosen"], row["rejected"]),
        ):
            for message in messages:
                yield message["content"]


def build_chat_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 2048, seed: int = 0):
    """Train a byte-level BPE tokenizer with chat special tokens and `CHAT_TEMPLATE`.

    Args:
        corpus (`Iterable[str]`, *optional*): Training text; `tokenizer_corpus(seed)` by default. Byte-level BPE
            encodes any text, in or out of the corpus.
        vocab_size (`int`, *optional*, defaults to `2048`): Upper bound of the vocabulary.
        seed (`int`, *optional*, defaults to `0`): Seed of the default corpus.

    Returns:
        `transformers.PreTrainedTokenizerFast`
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus if corpus is not None else tokenizer_corpus(seed)), trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=TINY_CAUSAL_LM_CONFIG["max_position_embeddings"],
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_tiny_causal_lm(
    output_dir: str | Path, seed: int = 0, corpus: Iterable[str] | None = None, **config_overrides
) -> Path:
    """Build a random-init Llama-style causal LM and its tokenizer into `output_dir` (safetensors).

    Args:
        output_dir (`str` or `Path`): Folder to write; loadable with `AutoModelForCausalLM.from_pretrained`.
        seed (`int`, *optional*, defaults to `0`): Seeds the tokenizer corpus and the weights.
        corpus (`Iterable[str]`, *optional*): The tokenizer's training text; `tokenizer_corpus(seed)` by default. A
            corpus holding the task's text (e.g. synthetic ALOE dialogues) gives whole-word tokens, so a tiny model's
            context holds longer conversations and its replies take fewer steps to learn.
        **config_overrides (`Any`): Override entries of `TINY_CAUSAL_LM_CONFIG`.

    Returns:
        `Path`: `output_dir`.
    """
    from transformers import AutoModelForCausalLM, LlamaConfig

    output_dir = Path(output_dir)
    tokenizer = build_chat_tokenizer(corpus, seed=seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **{**TINY_CAUSAL_LM_CONFIG, **config_overrides},
    )
    with _seeded(seed):
        model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def build_encoder_tokenizer(corpus: Iterable[str] | None = None, vocab_size: int = 2048, seed: int = 0):
    """A lower-casing WordPiece tokenizer in the BERT layout (`[CLS] text [SEP]`), learned from word counts.

    The vocabulary is every character (alone and as a `##` continuation) plus the most frequent whole words of the
    corpus, ties broken alphabetically, so unseen words still split into known pieces. It is counted rather than
    trained with `tokenizers`' WordPiece trainer, whose token set varies from run to run (ties follow hash order),
    which would make the "same seed, same weights" promise false.
    """
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in corpus if corpus is not None else tokenizer_corpus(seed):
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({character for word in words for character in word})
    pieces = [*specials, *characters, *(f"##{c}" for c in characters)]
    frequent = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))
    pieces += frequent[: max(0, vocab_size - len(pieces))]
    tokenizer = Tokenizer(models.WordPiece(vocab={piece: i for i, piece in enumerate(pieces)}, unk_token="[UNK]"))
    tokenizer.normalizer, tokenizer.pre_tokenizer, tokenizer.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tokenizer.add_special_tokens(specials)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=TINY_ENCODER_CONFIG["max_position_embeddings"],
    )


def build_tiny_encoder(
    output_dir: str | Path, seed: int = 0, corpus: Iterable[str] | None = None, **config_overrides
) -> Path:
    """Build a random-init BERT-style encoder and its WordPiece tokenizer into `output_dir` (safetensors).

    Args:
        output_dir (`str` or `Path`): Folder to write; loadable with `AutoModel.from_pretrained`.
        seed (`int`, *optional*, defaults to `0`): Seeds the tokenizer corpus and the weights.
        corpus (`Iterable[str]`, *optional*): The tokenizer's word counts; `tokenizer_corpus(seed)` by default. A
            corpus holding the task's text keeps its words whole (rather than split into characters), so long
            excerpts fit the encoder's 512 positions.
        **config_overrides (`Any`): Override entries of `TINY_ENCODER_CONFIG`.

    Returns:
        `Path`: `output_dir`.
    """
    from transformers import AutoModel, BertConfig

    output_dir = Path(output_dir)
    tokenizer = build_encoder_tokenizer(corpus, seed=seed)
    config = BertConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **{**TINY_ENCODER_CONFIG, **config_overrides}
    )
    with _seeded(seed):
        model = AutoModel.from_config(config)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir


def _cached(name: str, build: Callable[[Path], Path], cache_dir: str | Path | None) -> Path:
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = target / name
    if (target / "config.json").exists():
        return target
    # Built beside the target and renamed into place, so a concurrent or interrupted build never leaves a half folder.
    with atomic_output(target, overwrite=True) as staging:
        build(staging)
    return target


def _cache_key(kind: str, seed: int) -> str:

    # The tokenizers are trained on the synthetic text, so a change to it must not reuse an old build.
    return f"{kind}-v{KIT_VERSION}-{text_banks_fingerprint()}-seed{seed}"


def tiny_causal_lm(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The folder of the tiny causal LM for `seed`, built on first use and cached (see `default_cache_dir`)."""
    return _cached(_cache_key("tiny-llama", seed), lambda path: build_tiny_causal_lm(path, seed), cache_dir)


def tiny_encoder(cache_dir: str | Path | None = None, seed: int = 0) -> Path:
    """The folder of the tiny BERT-style encoder for `seed`, built on first use and cached."""
    return _cached(_cache_key("tiny-bert", seed), lambda path: build_tiny_encoder(path, seed), cache_dir)


def write_tiny_assets(
    folder: str | Path,
    num_train_rows: int = 256,
    num_test_rows: int = 64,
    seed: int = 0,
    overwrite: bool = False,
    cache_dir: str | Path | None = None,
    num_multifacet_instructions: int = 12,
    num_aloe_personas: int = 24,
    num_general_rows: int = 384,
) -> Path:
    """Everything the tiny example configs (`examples/configs/tiny/`) and the offline demo point at, in one folder:

    - `causal_lm/`: the tiny causal LM and its chat tokenizer;
    - `encoder_backbone/`: the tiny BERT-style encoder (a backbone to train a PersonaEncoder from);
    - `encoder/`: an (untrained) mean-pooling PersonaEncoder around it, for DPORE;
    - `alignx/train.parquet`, `alignx/test.parquet`: synthetic AlignX rows (counterfactual pairs, disjoint users);
    - `multifacet/train.parquet`, `multifacet/test.parquet`: a counterfactual MultiFacet benchmark built from
      `num_multifacet_instructions` synthetic instructions, histories (T = 3) attached as text;
    - `aloe/`: a `build-dataset aloe` folder (configs `preference`, `personas`, `excerpts`) of synthetic ALOE:
      `num_aloe_personas` personas (a sixth of them, at least two, held out for `test`), 4 conversations of 6 turns
      each, every rejected reply a row;
    - `general.jsonl`: `num_general_rows` general preference rows (UltraFeedback-binarized's schema).

    Written atomically; an existing folder is kept unless `overwrite`. The models come from the kit's cache
    (`cache_dir`, see `tiny_causal_lm`).
    """
    import shutil

    with atomic_output(folder, overwrite) as staging:
        staging.mkdir(parents=True)
        shutil.copytree(tiny_causal_lm(cache_dir, seed), staging / "causal_lm")
        shutil.copytree(tiny_encoder(cache_dir, seed), staging / "encoder_backbone")
        PersonaEncoder.from_pretrained(staging / "encoder_backbone").save_pretrained(staging / "encoder")
        (staging / "alignx").mkdir()
        alignx_dataset(num_train_rows, seed=seed).to_parquet(str(staging / "alignx" / "train.parquet"))
        alignx_dataset(num_test_rows, seed=seed + 1).to_parquet(str(staging / "alignx" / "test.parquet"))
        _write_tiny_multifacet(staging / "multifacet", num_multifacet_instructions, seed)
        _write_tiny_aloe(staging / "aloe", num_aloe_personas, seed)
        write_rows(
            general_preference_rows(num_general_rows, seed),
            staging / "general.jsonl",
            GENERAL_FEATURES,
            progress=False,
        )
    return Path(folder)


def _write_tiny_aloe(folder: Path, num_personas: int, seed: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "aloe.jsonl"
        rows = aloe_rows(num_personas, conversations_per_persona=4, turns=6, seed=seed)
        write_rows(rows, source, ALOE_FEATURES, progress=False)
        config = ALOEBuildConfig(seed=seed, test_personas=max(2, num_personas // 6))
        write_aloe_folder(source, folder, config)


def _write_tiny_multifacet(folder: Path, num_instructions: int, seed: int) -> None:
    import tempfile

    folder.mkdir()
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source.parquet"
        write_rows(multifaceted_rows(num_instructions, seed=seed), source, MULTIFACETED_FEATURES, progress=False)
        config = MultifacetBuildConfig(test_instructions=2, history_size=3, seed=seed)
        configs, _ = build_multifacet_cf(source, config)
        responses = configs["responses"]["train"]
        for split, rows in configs["counterfactual"].items():
            attach_history(rows, responses, lazy=False).to_parquet(str(folder / f"{split}.parquet"))


# ----------------------------------------------------------------------------------- scripted role-play backends
# `personalign eval roleplay --user-simulator scripted:aloe-user --judge scripted:aloe-judge`: the role-play of the
# DPORE paper's Table 1 offline, on synthetic ALOE personas (`personalign.data.synthetic_aloe`).
SCRIPTED_VERSION = 1
"""Part of the scripted backends' call-cache key: bumped when their rules change, so cached answers are not reused."""


class ScriptedALOEBackend(GenerationBackend):
    """What the scripted role-play backends share: each prompt is read by the role's `answer`, which finds the
    synthetic ALOE persona in it (`personalign.data.synthetic_aloe.persona_from_texts`) and answers by that
    persona's rules; a prompt of another kind, or a persona that is not a synthetic one, is an `InputError`."""

    expects = "its role's prompts"
    """What the backend answers, for the message on any other prompt."""

    def cache_key_fields(self) -> dict[str, int]:
        """`{"scripted": SCRIPTED_VERSION}`."""
        return {"scripted": SCRIPTED_VERSION}

    def answer(self, messages: Messages, seed: int) -> str | None:
        """The answer to one prompt; `None` when the prompt is not of this role's kind.

        Raises:
            `InputError`: For a persona that is not a synthetic ALOE one (`not_synthetic`).
        """
        raise NotImplementedError

    def not_synthetic(self, profile: str) -> InputError:
        """The error for a persona that is not a synthetic ALOE one."""
        return InputError(
            f"{self.name} plays synthetic ALOE personas only (personalign synthetic aloe, write_tiny_assets' aloe/); "
            f"this profile is not one: {profile[:80]!r}."
        )

    def _generate(
        self, prompts: list[Messages], max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> list[str]:
        answers = []
        for messages in prompts:
            answer = self.answer(messages, seed or 0)
            if answer is None:
                raise InputError(f"{self.name} answers {self.expects} only.")
            answers.append(answer)
        return answers


class ScriptedALOEUser(ScriptedALOEBackend):
    """`scripted:aloe-user`: the rule-based user of a synthetic ALOE persona as a user simulator. It reads the persona
    (profile, personality), the turn and the model's last reply out of a role-play user-simulator prompt
    (`personalign.evaluation.roleplay.parse_user_simulator_prompt`) and answers
    `personalign.data.synthetic_aloe.simulated_user_message(persona, turn, last_reply, seed)`.

    Raises:
        `InputError` (from `generate`): For a prompt that is not a user-simulator prompt, or a persona that is not a
            synthetic ALOE one (`persona_from_texts`).
    """

    name = "scripted:aloe-user"
    expects = "the user-simulator prompts of eval roleplay"

    def answer(self, messages: Messages, seed: int) -> str | None:
        """The persona's next user message, or `None` for a prompt that is not a user-simulator prompt."""
        view = parse_user_simulator_prompt(messages)
        if view is None:
            return None
        persona = persona_from_texts(view.profile, view.personality)
        if persona is None:
            raise self.not_synthetic(view.profile)
        return simulated_user_message(persona, view.turn, view.last_reply, seed)


_FIELDS = ("profile", "personalities", "message", "response")


def parse_persona_tailoring_prompt(messages: Messages) -> dict[str, str] | None:
    """The fields of a filled `PERSONA_TAILORING_PROMPT` (the DPORE paper's Appendix A) sent as one user message:
    `profile`, `personalities`, `message`, `response`, read off the template's fixed text; `None` for another prompt.

    Args:
        messages (`list[dict]`): A chat prompt.

    Returns:
        `dict[str, str]` or `None`
    """
    if len(messages) != 1 or messages[0].get("role") != "user":
        return None
    marks = {name: f"\x00{name}\x00" for name in _FIELDS}
    pieces = [fill_template(PERSONA_TAILORING_PROMPT, **marks)]
    for name in _FIELDS:  # the fixed text between the fields, in order
        pieces[-1:] = pieces[-1].split(marks[name])
    text, found = str(messages[0].get("content", "")), {}
    if not (text.startswith(pieces[0]) and text.endswith(pieces[-1])):
        return None
    text = text[len(pieces[0]) : len(text) - len(pieces[-1])]
    for name, separator in zip(_FIELDS[:-1], pieces[1:-1], strict=True):
        value, sep, text = text.partition(separator)
        if not sep:
            return None
        found[name] = value
    found[_FIELDS[-1]] = text
    return found


class ScriptedALOEJudge(ScriptedALOEBackend):
    """`scripted:aloe-judge`: a judge of synthetic ALOE personas. It reads the profile, the personalities and the
    reply out of the DPORE paper's Appendix A prompt (`parse_persona_tailoring_prompt`) and answers
    `personalign.data.synthetic_aloe.style_agreement_score(persona, response)` (1-5) as text.

    Raises:
        `InputError` (from `generate`): For a prompt that is not the Appendix A prompt, or a persona that is not a
            synthetic ALOE one.
    """

    name = "scripted:aloe-judge"
    expects = "the DPORE paper's persona-tailoring prompt"

    def answer(self, messages: Messages, seed: int) -> str | None:
        """The style-agreement score (1-5) as text, or `None` for a prompt that is not the Appendix A prompt."""
        fields = parse_persona_tailoring_prompt(messages)
        if fields is None:
            return None
        persona = persona_from_texts(fields["profile"], fields["personalities"])
        if persona is None:
            raise self.not_synthetic(fields["profile"])
        return str(style_agreement_score(persona, fields["response"]))


SCRIPTED_BACKENDS: dict[str, type[GenerationBackend]] = {
    "aloe-user": ScriptedALOEUser,
    "aloe-judge": ScriptedALOEJudge,
}
"""The scripted backends by the name after `scripted:`."""


def scripted_backend(name: str) -> GenerationBackend:
    """The scripted backend named `name` (`scripted:NAME` without its prefix): `aloe-user` or `aloe-judge`.

    Args:
        name (`str`): The name.

    Returns:
        `GenerationBackend`

    Raises:
        `InputError`: For an unknown name, listing the known ones.
    """
    if name not in SCRIPTED_BACKENDS:
        raise InputError(f"unknown scripted backend {name!r}; use scripted:{' or scripted:'.join(SCRIPTED_BACKENDS)}.")
    return SCRIPTED_BACKENDS[name]()
