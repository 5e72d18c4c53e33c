"""The one registry of training methods (as PEFT registers each method once with its config and model classes).

Each method is declared here once: its config and trainer classes, its training script (`personalign.scripts.<name>`:
its script arguments, `make_parser()` and `main()`), the one-line summary the CLI shows, the text its model card
carries, the paper it cites and the files it adds to a trained folder. `personalign train`, `push-model`, the model
card writer and the docs read this table; nothing else lists the methods. Adding a method is one new script module
(with its config and trainer) plus one `register_method` call.

Classes are named by import path and loaded on first use, so reading the registry (the CLI's start-up, `--help`)
does not import torch, transformers or TRL.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType

from .errors import InputError
from .papers import ALIGNX_CITATION, COUNTERFACTUAL_CITATION, DPORE_CITATION

PERSONA_ENCODER_FOLDER = "persona_encoder"
"""Where a DPORE run saves the persona encoder it used, inside its output folder."""
PROJECTION_HEAD_FOLDER = "projection_head"
"""Where DPORE saves its projection head (`config.json` + `model.safetensors`) inside its output folder and each
checkpoint."""


@dataclass(frozen=True)
class MethodCard:
    """What a trained method's model card says about it.

    Args:
        title (`str`): Shown after the model's name, e.g. `"DPORE policy"`.
        description (`str`): One paragraph (Markdown) on what the method trains, with the paper section.
        usage (`str`): A Python snippet that loads the published model; `{repo}` is replaced by the repo id.
        pipeline_tag (`str`): The Hub pipeline tag of the published model.
    """

    title: str
    description: str
    usage: str
    pipeline_tag: str


@dataclass(frozen=True)
class Method:
    """One training method.

    Args:
        name (`str`): The name on the command line (`personalign train NAME`) and in run records.
        summary (`str`): One line for `personalign train --help`.
        config (`str`): `"module:Class"` of its config: a `TrainingArguments` subclass for a method trained by a
            `Trainer`, else a dataclass of its settings (the learned preference inferencer's).
        trainer (`str`): `"module:Class"` of its trainer (the class that trains: a `Trainer`, or the learned
            preference inferencer with its `fit`).
        script (`str`): The module of its training script (e.g. `"personalign.scripts.dpore"`), which defines
            `make_parser() -> trl.TrlParser` over (script arguments, config, `trl.ModelConfig`) and
            `main(script_args, training_args, model_args) -> dict` (trains, writes the output folder and returns the
            run record); `personalign train NAME` parses with the one and runs the other.
        citation (`str`): BibTeX of the paper it implements (`personalign.papers`).
        card (`MethodCard`, *optional*): Its model card text; `None` for a method that writes its own card.
        files (`Mapping[str, str]`): Files or folders the method adds to a trained folder, each with the line the
            model card says about it.
    """

    name: str
    summary: str
    config: str
    trainer: str
    script: str
    citation: str
    card: MethodCard | None = None
    files: Mapping[str, str] = field(default_factory=dict)

    def config_class(self) -> type:
        """The config class (imported now)."""
        return _load(self.config)

    def trainer_class(self) -> type:
        """The trainer class (imported now)."""
        return _load(self.trainer)

    def script_module(self) -> ModuleType:
        """The training script module (imported now)."""
        return importlib.import_module(self.script)


def _load(path: str) -> type:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


METHODS: dict[str, Method] = {}
"""Every registered method, by name, in registration order."""


def register_method(method: Method) -> Method:
    """Add a method to the registry.

    Raises:
        `ValueError`: If a method of that name is already registered (a programming error, not the user's).
    """
    if method.name in METHODS:
        raise ValueError(f"a method named {method.name!r} is already registered.")
    METHODS[method.name] = method
    return method


def unregister_method(name: str) -> Method:
    """Remove a method from the registry (tests register throwaway methods and remove them again).

    Returns:
        `Method`: The removed entry.
    """
    return METHODS.pop(name)


def get_method(name: str) -> Method:
    """The registered method called `name`.

    Raises:
        `InputError`: If there is none, naming the ones there are.
    """
    if name not in METHODS:
        raise InputError(f"unknown method {name!r}: use one of {', '.join(METHODS)}.")
    return METHODS[name]


_POLICY_USAGE = (
    "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
    "from personalign import Persona, {prompt}\n\n"
    'model = AutoModelForCausalLM.from_pretrained("{{repo}}")\n'
    'tokenizer = AutoTokenizer.from_pretrained("{{repo}}")\n'
    "messages = {call}\n"
    "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt')"
)

register_method(
    Method(
        name="dpore",
        summary="DPO with a persona-representation regularizer (the DPORE paper, §3.3).",
        config="personalign.trainers.dpore_config:DPOREConfig",
        trainer="personalign.trainers.dpore_trainer:DPORETrainer",
        script="personalign.scripts.dpore",
        citation=DPORE_CITATION,
        card=MethodCard(
            title="DPORE policy",
            description="A policy trained with **DPORE**: DPO with a persona-representation regularizer that pulls "
            "the policy's representation of the preferred response toward the user's persona embedding "
            "(context-aware alignment, §3.3). The projection head and the persona encoder used in training are "
            "included.",
            usage="from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "from personalign import PersonaEncoder\n"
            "from personalign.models.projection_head import PersonaProjectionHead\n\n"
            'model = AutoModelForCausalLM.from_pretrained("{repo}")\n'
            'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
            'head = PersonaProjectionHead.from_pretrained("{repo}", subfolder="projection_head")  # to continue training\n'
            'encoder = PersonaEncoder.from_pretrained("{repo}", subfolder="persona_encoder")',
            pipeline_tag="text-generation",
        ),
        files={
            PROJECTION_HEAD_FOLDER: "DPORE's projection head h_phi (persona embedding -> policy hidden size)",
            PERSONA_ENCODER_FOLDER: "the PersonaEncoder that embedded the personas in training",
        },
    )
)
_CHAT_USAGE = (
    "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
    'model = AutoModelForCausalLM.from_pretrained("{repo}")\n'
    'tokenizer = AutoTokenizer.from_pretrained("{repo}")\n'
    'messages = [{{"role": "user", "content": "Any plans for the weekend?"}}]  # the conversation so far\n'
    "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt')"
)

register_method(
    Method(
        name="sft",
        summary="Preferred-SFT: TRL's SFTTrainer on the preferred replies, general data mixed in (the DPORE paper's "
        "baseline, §4.1).",
        config="trl:SFTConfig",
        trainer="trl:SFTTrainer",
        script="personalign.scripts.sft",
        citation=DPORE_CITATION,
        card=MethodCard(
            title="Preferred-SFT policy",
            description="A policy fine-tuned with **Preferred-SFT**, the DPORE paper's baseline (§4.1): TRL's "
            "`SFTTrainer` on the preferred reply of each preference row (prompt-completion, the loss on the reply "
            "only), with the preferred replies of general preference data mixed in to keep nominal performance.",
            usage=_CHAT_USAGE,
            pipeline_tag="text-generation",
        ),
    )
)
register_method(
    Method(
        name="dpo",
        summary="Plain DPO: TRL's DPOTrainer on the preference rows, general data mixed in (the DPORE paper's "
        "baseline, §4.1).",
        config="trl:DPOConfig",
        trainer="trl:DPOTrainer",
        script="personalign.scripts.dpo",
        citation=DPORE_CITATION,
        card=MethodCard(
            title="DPO policy",
            description="A policy trained with **DPO**, the DPORE paper's baseline (§4.1): TRL's `DPOTrainer` on the "
            "preference rows with general preference data mixed in, without any persona representation; the DPORE "
            "paper starts it from the Preferred-SFT model, which is also its reference.",
            usage=_CHAT_USAGE,
            pipeline_tag="text-generation",
        ),
    )
)
register_method(
    Method(
        name="pba",
        summary="Preference-bridged alignment: the persona as preference text in the prompt (AlignX, §5).",
        config="personalign.trainers.pba_config:PBAConfig",
        trainer="personalign.trainers.pba_trainer:PBATrainer",
        script="personalign.scripts.pba",
        citation=ALIGNX_CITATION,
        card=MethodCard(
            title="PBA policy",
            description="A policy trained with **preference-bridged alignment** (AlignX, §5): the prompt states the "
            "user's preferences over the 90 AlignX dimensions as text, inferred from their history.",
            usage=_POLICY_USAGE.format(
                prompt="pba_messages", call="pba_messages(post, Persona.from_alignx_row(row).profile_text())"
            ),
            pipeline_tag="text-generation",
        ),
    )
)
register_method(
    Method(
        name="ica",
        summary="In-context alignment: the persona's history in the prompt (AlignX, §5).",
        config="personalign.trainers.ica_config:ICAConfig",
        trainer="personalign.trainers.ica_trainer:ICATrainer",
        script="personalign.scripts.ica",
        citation=ALIGNX_CITATION,
        card=MethodCard(
            title="ICA policy",
            description="A policy trained with **in-context alignment** (AlignX, §5): the prompt carries the user's "
            "history (comments, chosen/rejected pairs, demographics) directly.",
            usage=_POLICY_USAGE.format(prompt="ica_messages", call="ica_messages(post, Persona.from_alignx_row(row))"),
            pipeline_tag="text-generation",
        ),
    )
)
register_method(
    Method(
        name="reward",
        summary="A personalized in-context reward model (the counterfactual paper, §3.3).",
        config="personalign.trainers.reward_config:PersonalizedRewardConfig",
        trainer="personalign.trainers.reward_trainer:PersonalizedRewardTrainer",
        script="personalign.scripts.reward",
        citation=COUNTERFACTUAL_CITATION,
        card=MethodCard(
            title="Personalized reward model",
            description="A Bradley-Terry **personalized in-context reward model** (counterfactual in-context "
            "personalization, §3.3): it scores a response given the user's feedback history and the instruction.",
            usage="from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
            'model = AutoModelForSequenceClassification.from_pretrained("{repo}")\n'
            'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
            pipeline_tag="text-classification",
        ),
    )
)
register_method(
    Method(
        name="encoder",
        summary="A PersonaEncoder: InfoNCE over persona excerpts (the DPORE paper, §3.2); writes its own card.",
        config="personalign.encoder.training_args:PersonaEncoderTrainingArguments",
        trainer="personalign.encoder.trainer:PersonaEncoderTrainer",
        script="personalign.scripts.encoder",
        citation=DPORE_CITATION,
    )
)
register_method(
    Method(
        name="preference-inferencer",
        summary="A learned preference inferencer: a preference head on PersonaEncoder embeddings of history items, "
        "for PBA's inferred preferences (AlignX, §5, Appendix D.5).",
        config="personalign.scripts.preference_inferencer:PreferenceInferencerConfig",
        trainer="personalign.inference.learned:LearnedPreferenceInferencer",
        script="personalign.scripts.preference_inferencer",
        citation=ALIGNX_CITATION,
        card=MethodCard(
            title="learned preference inferencer",
            description="A **learned preference inferencer** for preference-bridged alignment (AlignX, §5): each "
            "history item (a comment, or a chosen / rejected pair) is embedded once by a PersonaEncoder and a "
            "preference head reads its direction on the 90 AlignX dimensions (positive / negative / neutral), in "
            "place of 90 LLM questions per item; items are aggregated with AlignX's rule into the user's preference "
            "text. Trained on AlignX's per-item gold directions, thresholds calibrated for macro-F1 (Appendix D.5).",
            usage="from personalign import LearnedPreferenceInferencer, Persona\n\n"
            'inferencer = LearnedPreferenceInferencer.from_pretrained("{repo}")\n'
            "profile = inferencer.profile_text(Persona.from_alignx_row(row))  # PBA's preference text",
            pipeline_tag="text-classification",
        ),
        files={
            "preference_head": "the preference head (embedding -> 90 dimensions x 3 classes)",
            "encoder": "the PersonaEncoder that embeds each history item",
            "learned_inference_config.json": "the thresholds, the preference space and the training settings",
        },
    )
)
