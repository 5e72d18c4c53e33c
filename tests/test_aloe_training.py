"""ALOE training (the DPORE paper's §4.1): general preference data mixed into `sft`, `dpo` and `dpore` (counts and
shares exact, formats accepted and converted, general rows never regularised, numerically), and the paper's
baselines `personalign train sft` (Preferred-SFT) and `personalign train dpo` through the CLI, learning on tiny
ALOE-format rows."""

from __future__ import annotations

import json
import random
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOTrainer

from personalign.cli import app, run
from personalign.scripts.sft import preferred_completions, unique_preferred
from personalign.scripts.utils import ScriptArguments, mix_general_rows
from personalign.trainers import DPOREConfig, DPORETrainer

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = EXAMPLES / "configs" / "tiny"
# Learning thresholds, with room below what seeds 0, 1, 2 measured (PERSONALIGN_LEARNING_SEED): the held-out loss of
# the preferred replies fell by 0.549 / 0.575 / 0.540 nats (7.59 -> 7.04) in 8 SFT steps; DPO's held-out reward
# accuracy was 1.0 / 1.0 / 1.0 (chance 0.5; 0 before training, policy == reference), its margin 1.62 / 1.68 / 1.57.
SFT_LOSS_DROP = 0.3
DPO_ACCURACY = 0.8
DPO_MARGIN = 0.8

# ---------------------------------------------------------------------------------------- rows in K1's schemas
# Each persona has a style the preferred replies carry (and its user messages hint at); rejected replies are generic.
STYLES = {
    "cheerful": ("omg hi!! so excited,", "Wow, {topic} sounds amazing! Let's have fun with it!"),
    "formal": ("Good afternoon. I would like advice:", "Certainly. Regarding {topic}, I would recommend a plan."),
    "terse": ("quick q:", "{topic}: do it. Done."),
    "poetic": ("Dear friend, my heart wonders,", "Ah, {topic}, like a river under the moon, gentle and bright."),
}
TOPICS = ("hiking", "baking", "chess", "jazz", "gardening", "running", "painting", "coding", "sailing", "tea")
GENERIC = "Here is some general information about {topic}."


def aloe_preference_rows(num_personas: int, turns: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """ALOE `preference` rows (contract K1): per persona one conversation of `turns` turns, one row per turn with
    the conversation so far (user turns and preferred replies) as the prompt."""
    rng = random.Random(seed)
    rows = []
    for p in range(num_personas):
        style = list(STYLES)[p % len(STYLES)]
        cue, reply = STYLES[style]
        persona_id = f"persona-{seed}-{p}"
        prompt: list[dict[str, str]] = []
        for turn in range(1, turns + 1):
            topic = rng.choice(TOPICS)
            prompt = [*prompt, {"role": "user", "content": f"{cue} tell me about {topic}?"}]
            chosen = reply.format(topic=topic)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": GENERIC.format(topic=topic)}],
                    "persona_id": persona_id,
                    "profile": f"A person who loves {topic}.",
                    "personality": f"{style.capitalize()} in every message.",
                    "conversation_id": p,
                    "turn": turn,
                }
            )
            prompt = [*prompt, {"role": "assistant", "content": chosen}]
    return rows


def general_rows(num_rows: int, seed: int = 0, conversational: bool = True) -> list[dict[str, Any]]:
    """General preference rows in UltraFeedback-binarized's schema (implicit prompt in chosen / rejected), or, with
    `conversational=False`, standard text rows with an explicit prompt."""
    rng = random.Random(seed)
    rows = []
    for i in range(num_rows):
        question = f"What is {rng.randint(2, 99)} plus {rng.randint(2, 99)}? (general {i})"
        good, bad = "Let me add them step by step.", "No idea."
        if not conversational:
            rows.append({"prompt": question, "chosen": good, "rejected": bad})
            continue
        user = {"role": "user", "content": question}
        chosen = [user, {"role": "assistant", "content": good}]
        rejected = [user, {"role": "assistant", "content": bad}]
        rows.append(
            {
                "prompt": question,
                "prompt_id": f"{i:064x}",
                "chosen": chosen,
                "rejected": rejected,
                "messages": chosen,
                "score_chosen": 8.0,
                "score_rejected": 3.0,
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def card(shards: str) -> str:
    """A dataset card declaring the `preference` config of a `build-dataset aloe` folder, its files under `shards/`.

    `datasets` caches a card folder's config under the folder's name and a hash of the card's relative file
    patterns, not of the files' paths or contents: two folders of one name would share the first one's rows. Each
    folder here names its shards uniquely (`shards`), so no test reads another's cached rows."""
    return f"""---
configs:
- config_name: preference
  data_files:
  - split: train
    path: {shards}/train.jsonl
  - split: test
    path: {shards}/test.jsonl
---
"""


def write_aloe_folder(
    folder: Path, train_personas: int, test_personas: int, seed: int = 0, train_rows: list | None = None
) -> Path:
    """A folder laid out as `personalign build-dataset aloe` writes it (config `preference`, split by persona);
    with `train_rows`, both splits hold those rows (one schema: `datasets` refuses splits that differ)."""
    shards = f"preference-{uuid.uuid4().hex[:12]}"
    rows = aloe_preference_rows(train_personas, seed=seed) if train_rows is None else train_rows
    held_out = aloe_preference_rows(test_personas, seed=seed + 1000) if train_rows is None else train_rows
    write_jsonl(folder / shards / "train.jsonl", rows)
    write_jsonl(folder / shards / "test.jsonl", held_out)
    (folder / "README.md").write_text(card(shards))
    return folder


class Seeded:
    """The config fields the mixing reads."""

    def __init__(self, seed: int = 0, general_row_column: str | None = None) -> None:
        self.seed = seed
        if general_row_column:
            self.general_row_column = general_row_column


# ----------------------------------------------------------------------------------------------------- mixing
def mixed(tmp_path: Path, personal: list[dict], general: list[dict], share: float, seed: int = 0, marker=None):
    path = write_jsonl(tmp_path / "general.jsonl", general)
    script_args = ScriptArguments(dataset_name="aloe", general_dataset_name=str(path), general_share=share)
    return mix_general_rows(Dataset.from_list(personal), script_args, Seeded(seed, marker))


@pytest.mark.parametrize(("personal", "share", "expected"), [(12, 0.25, 4), (12, 0.5, 12), (10, 0.1, 1), (9, 0.4, 6)])
def test_mixing_counts_and_shares_are_exact(tmp_path, personal, share, expected):
    rows = aloe_preference_rows(personal // 3 + 1)[:personal]
    general = general_rows(20)
    out, info = mixed(tmp_path, rows, general, share, marker="general_row")
    assert info == {
        "dataset": str(tmp_path / "general.jsonl"),
        "config": None,
        "split": "train",
        "share": share,
        "rows": expected,
        "personal_rows": personal,
    }
    assert len(out) == personal + expected and sum(out["general_row"]) == expected
    assert expected == round(personal * share / (1 - share))
    # Every personal row is there once, unchanged; the general rows are distinct rows of the general data, with an
    # explicit prompt (taken out of chosen / rejected), the persona columns null and UltraFeedback's extras gone.
    ours = [{k: v for k, v in row.items() if k != "general_row"} for row in out if not row["general_row"]]
    assert sorted(map(json.dumps, ours)) == sorted(map(json.dumps, rows))
    theirs = [row for row in out if row["general_row"]]
    questions = {row["prompt"] for row in general}
    assert len({row["prompt"][0]["content"] for row in theirs}) == expected
    for row in theirs:
        assert row["prompt"][0]["role"] == "user" and row["prompt"][0]["content"] in questions
        assert row["chosen"] == [{"role": "assistant", "content": "Let me add them step by step."}]
        assert row["persona_id"] is None and row["profile"] is None and row["turn"] is None
    assert set(out.column_names) == {*rows[0], "general_row"}
    # The epoch is shuffled with the seed: general rows are not all at the end.
    assert not all(out["general_row"][-expected:]) or expected == len(out)


def test_mixing_is_seeded_and_leaves_runs_without_general_data_alone(tmp_path):
    rows = aloe_preference_rows(4)
    first, _ = mixed(tmp_path, rows, general_rows(30), 0.5)
    again, _ = mixed(tmp_path, rows, general_rows(30), 0.5)
    other, _ = mixed(tmp_path, rows, general_rows(30), 0.5, seed=1)
    assert first.to_list() == again.to_list() and first.to_list() != other.to_list()
    assert "general_row" not in first.column_names  # only a config naming a marker column (DPORE's) gets one
    plain = Dataset.from_list(rows)
    assert mix_general_rows(plain, ScriptArguments(dataset_name="aloe"), Seeded()) == (plain, None)


def test_text_general_rows_join_conversational_rows_and_the_reverse_is_refused(tmp_path):
    out, info = mixed(tmp_path, aloe_preference_rows(4), general_rows(20, conversational=False), 0.5)
    general = [row for row in out if row["persona_id"] is None]
    assert len(general) == info["rows"] == 12
    assert general[0]["prompt"][0]["role"] == "user" and general[0]["chosen"][0]["role"] == "assistant"
    text_rows = [{"prompt": "hi", "chosen": "a", "rejected": "b"}] * 4
    with pytest.raises(Exception, match=r"general\.jsonl.*conversational general rows.*one format"):
        mixed(tmp_path, text_rows, general_rows(10), 0.5)
    out, _ = mixed(tmp_path, text_rows, general_rows(10, conversational=False), 0.2)
    assert out["prompt"].count("hi") == 4 and len(out) == 5


# ------------------------------------------------------------------------------- general rows never regularised
def rows_of(batch: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    """The rows `keep` of a collated DPORE batch: `[chosen; rejected]` stacked tensors (2B rows, TRL internal 5 of
    `DPORETrainer`) and per-row persona tensors (B rows), at the same padded length."""
    size = batch["persona_mask"].shape[0]
    index = torch.tensor(keep)
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.shape[0] == 2 * size:
            out[key] = torch.cat([value[index], value[index + size]])
        elif isinstance(value, torch.Tensor) and value.shape[0] == size:
            out[key] = value[index]
        else:
            out[key] = value
    return out


def without_persona(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("persona_")}


def test_general_rows_get_no_persona_embedding_and_train_as_plain_dpo(tiny_lm_path, tiny_encoder_path, tmp_path):
    from personalign import PersonaEncoder

    # The rows have no persona_text: the encoder embeds prompt + reply of every row, except the general rows.
    data, info = mixed(tmp_path, aloe_preference_rows(2, turns=2), general_rows(8), 0.5, marker="general_row")
    assert info["rows"] == 4 and len(data) == 8
    args = DPOREConfig(
        output_dir=str(tmp_path / "dpore"),
        re_lambda=5.0,
        beta=0.5,
        per_device_train_batch_size=8,
        train_sampling_strategy="sequential",
        max_length=512,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    trainer = DPORETrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_lm_path),
        args=args,
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(tiny_lm_path),
        persona_encoder=PersonaEncoder.from_pretrained(tiny_encoder_path),
    )
    assert args.re_placement == "margin"
    embedded = trainer.train_dataset
    general = embedded["general_row"]
    assert [c is None for c in embedded["persona_embedding_chosen"]] == general
    assert [r is None for r in embedded["persona_embedding_rejected"]] == general
    torch.manual_seed(1)  # move the policy off its reference, so the DPO term is not 0
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    model = trainer.model.eval()
    batch = dict(next(iter(trainer.get_train_dataloader())))
    assert batch["persona_mask"].tolist() == [0.0 if g else 1.0 for g in general]
    theirs = [i for i, g in enumerate(general) if g]
    ours = [i for i, g in enumerate(general) if not g]
    head = list(trainer.projection_head.parameters())

    # A batch of general rows only: DPO's loss exactly, and nothing reaches the projection head.
    general_batch = rows_of(batch, theirs)
    dpore_loss = trainer.compute_loss(model, dict(general_batch))
    dpo_loss = DPOTrainer.compute_loss(trainer, model, without_persona(general_batch))
    assert torch.equal(dpore_loss, dpo_loss)
    grads = torch.autograd.grad(dpore_loss, head, allow_unused=True)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in grads)

    # A mixed batch is the mean of its rows' losses: the personal rows' DPORE loss and the general rows' plain DPO
    # loss; the regulariser is active on the personal rows (their loss is not DPO's).
    personal_batch = rows_of(batch, ours)
    personal_loss = trainer.compute_loss(model, dict(personal_batch))
    personal_dpo = DPOTrainer.compute_loss(trainer, model, without_persona(personal_batch))
    assert abs(personal_loss.item() - personal_dpo.item()) > 1e-3
    mixed_loss = trainer.compute_loss(model, dict(batch))
    expected = (len(ours) * personal_loss + len(theirs) * dpo_loss) / len(general)
    assert mixed_loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # The head's gradient from the mixed batch is the personal rows' alone, scaled by their share of the batch.
    mixed_grads = torch.autograd.grad(trainer.compute_loss(model, dict(batch)), head)
    personal_grads = torch.autograd.grad(trainer.compute_loss(model, dict(personal_batch)), head)
    for a, b in zip(mixed_grads, personal_grads, strict=True):
        assert torch.count_nonzero(b) > 0
        torch.testing.assert_close(a, b * len(ours) / len(general), rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------------------- the baselines, via the CLI
def train_cli(method: str, *args: str) -> int:
    """`personalign train METHOD --config examples/configs/tiny/METHOD_aloe.yaml ARGS` in-process (the console
    script's `run`, its error map included); returns the exit code."""
    saved = sys.argv
    sys.argv = ["personalign", "train", method, "--config", str(TINY / f"{method}_aloe.yaml"), *args]
    try:
        run(app)
        return 0
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = saved


def first_and_last_eval(output_dir: Path) -> tuple[dict, dict]:
    """The evaluation before training (`eval_on_start`, from the last checkpoint's log) and after it (the record)."""
    checkpoint = max(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    log = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    record = json.loads((output_dir / "personalign_run.json").read_text())
    return next(entry for entry in log if "eval_loss" in entry), record["eval_metrics"]


@pytest.fixture(scope="module")
def aloe_runs(tmp_path_factory, tiny_lm_path, learning_seed):
    """ALOE rows (16 training personas, 8 held out), general rows, and Preferred-SFT trained on them through
    `personalign train sft` with the tiny config (8 steps), measured on the held-out personas before and after."""
    root = tmp_path_factory.mktemp("aloe_runs")
    aloe = write_aloe_folder(root / "aloe", 16, 8, seed=learning_seed)
    general = write_jsonl(root / "general.jsonl", general_rows(40, seed=learning_seed))
    common = [
        "--dataset_name", str(aloe), "--general_dataset_name", str(general), "--seed", str(learning_seed),
        "--eval_on_start", "true", "--disable_tqdm", "true", "--max_steps", "8", "--save_steps", "8",
    ]  # fmt: skip
    code = train_cli("sft", *common, "--model_name_or_path", str(tiny_lm_path), "--output_dir", str(root / "sft"))
    assert code == 0
    return {"root": root, "common": common, "sft": root / "sft", "seed": learning_seed}


@pytest.mark.learning
def test_preferred_sft_lowers_held_out_loss_on_the_preferred_replies(aloe_runs, check_learning):
    before, after = first_and_last_eval(aloe_runs["sft"])
    record = json.loads((aloe_runs["sft"] / "personalign_run.json").read_text())
    # 48 personal rows, less those that repeat another's (prompt, preferred reply); general rows at share 0.25.
    personal = len(unique_preferred(Dataset.from_list(aloe_preference_rows(16, seed=aloe_runs["seed"]))))
    assert record["method"] == "sft" and 40 <= personal <= 48
    assert record["general_data"]["personal_rows"] == personal
    assert record["general_data"]["rows"] == round(personal * 0.25 / 0.75)
    # The loss is on the completion (the preferred reply) only: TRL's prompt-completion default.
    assert record["hyperparameters"].get("completion_only_loss") in (None, True)
    check_learning("held-out loss drop (nats)", before["eval_loss"] - after["eval_loss"], SFT_LOSS_DROP)


@pytest.mark.learning
def test_dpo_from_the_sft_model_learns_the_held_out_personas_preferences(aloe_runs, check_learning):
    output = aloe_runs["root"] / "dpo"
    code = train_cli(
        "dpo", *aloe_runs["common"], "--model_name_or_path", str(aloe_runs["sft"]), "--output_dir", str(output)
    )
    assert code == 0
    before, after = first_and_last_eval(output)
    assert before["eval_rewards/accuracies"] == 0.0 and before["eval_rewards/margins"] == 0.0  # policy == reference
    check_learning("held-out reward accuracy", after["eval_rewards/accuracies"], DPO_ACCURACY)  # chance: 0.5
    check_learning("held-out reward margin", after["eval_rewards/margins"], DPO_MARGIN)
    record = json.loads((output / "personalign_run.json").read_text())
    assert record["method"] == "dpo" and record["base_model"] == str(aloe_runs["sft"])
    assert record["general_data"]["share"] == 0.25


def test_dpore_mixes_general_rows_in_without_the_regulariser(aloe_runs, tiny_encoder_path):
    from personalign import PersonaEncoder

    encoder = aloe_runs["root"] / "encoder"
    if not encoder.exists():
        PersonaEncoder.from_pretrained(tiny_encoder_path).save_pretrained(encoder)
    output = aloe_runs["root"] / "dpore"
    # One epoch in two batches of 32: 48 personal rows and 16 general ones.
    args = [*aloe_runs["common"], "--max_steps", "2", "--save_steps", "2", "--eval_on_start", "false"]
    args += ["--per_device_train_batch_size", "32"]
    code = train_cli(
        "dpore", *args, "--model_name_or_path", str(aloe_runs["sft"]), "--persona_encoder", str(encoder),
        "--output_dir", str(output), "--logging_steps", "1",
    )  # fmt: skip
    assert code == 0
    checkpoint = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    shares = [entry["re/persona_rows"] for entry in checkpoint["log_history"] if "re/persona_rows" in entry]
    # Over the epoch, the regulariser read the personal rows only (general rows: mask 0): 48 of 64.
    assert len(shares) == 2 and sum(shares) / 2 == 0.75
    record = json.loads((output / "personalign_run.json").read_text())
    assert record["eval_metrics"]["eval_re/persona_rows"] == 1.0  # the held-out split is personal only


def test_preferred_sft_trains_each_preferred_reply_once():
    """`build-dataset aloe --rejected all` makes one row per rejected reply: Preferred-SFT takes each (prompt,
    preferred reply) once, before general data is mixed in (so `general_share` is of the rows it trains on)."""
    user = [{"role": "user", "content": "Any tips for hiking?"}]
    rows = [
        {
            "prompt": user,
            "chosen": [{"role": "assistant", "content": "Wow! Hike!"}],
            "rejected": [{"role": "assistant", "content": r}],
        }
        for r in ("Generic.", "Certainly. Hike.")
    ]
    rows.append({**rows[0], "chosen": [{"role": "assistant", "content": "Wow! Camp!"}]})
    kept = unique_preferred(Dataset.from_list(rows))
    assert [row["chosen"][0]["content"] for row in kept] == ["Wow! Hike!", "Wow! Camp!"]
    assert kept[0]["rejected"][0]["content"] == "Generic."  # the first of each group
    assert preferred_completions(kept).column_names == ["prompt", "completion"]
    unique = Dataset.from_list(rows[:1])
    assert unique_preferred(unique) is unique
