"""The personalized in-context reward model (the counterfactual paper, §3.3, §4.1, Appendix A/B): history truncation,
rendering in `_prepare_dataset`, learning under counterfactual evaluation with the no-history ablation, the Table 1
report, the generative B.1 baseline and in-context B.2 generation."""

import json
import os
import random
import subprocess
import sys

import pytest
from datasets import Dataset
from PIL import Image
from transformers import AutoTokenizer

from personalign import PersonalizedRewardConfig, PersonalizedRewardTrainer
from personalign.data.multifacet import MultifacetBuildConfig, attach_history, build_multifacet_cf
from personalign.data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows, pair_adjacent_epochs
from personalign.errors import InputError
from personalign.evaluation.judges import LLMJudge
from personalign.inference.generation import GenerationBackend
from personalign.io import write_rows
from personalign.personas.persona import PairItem
from personalign.personas.prompts import feedback_generation_messages, feedback_judge_messages
from personalign.reward.evaluation import FeedbackRewardJudge, accuracy_table, evaluate_reward_model
from personalign.reward.feedback import (
    RENDERING_FILE,
    FeedbackRendering,
    attach_history_texts,
    column_values,
    generate_personalized,
    keep_recent_pairs,
    most_recent,
    read_rendering_file,
    render_reward_example,
    write_rendering_file,
)
from personalign.reward.modeling import load_reward_model

COMMON = dict(
    use_cpu=True,
    bf16=False,
    gradient_checkpointing=False,
    report_to="none",
    save_strategy="no",
    logging_steps=1000,
    disable_tqdm=True,
    seed=0,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_path):
    return AutoTokenizer.from_pretrained(tiny_lm_path)


def history(count):
    return [
        {"prompt": f"question {i}", "chosen": f"liked answer {i}", "rejected": f"disliked answer {i}"}
        for i in range(count)
    ]


def target_row(count=5, instruction="Plan my weekend trip", chosen="Briefly put: go hiking.", rejected="Long essay."):
    return {"prompt": instruction, "chosen": chosen, "rejected": rejected, "history_text": history(count)}


def chat_ids(tokenizer, pairs, instruction, response):
    messages = feedback_generation_messages([PairItem(**p) for p in pairs], instruction)
    return tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": response}], tokenize=True, return_dict=True
    )["input_ids"]


# --------------------------------------------------------------------------------------------------- truncation
def linear_keep(lengths, target, budget):
    best = None
    for k in range(len(lengths) + 1):
        if target + sum(lengths[len(lengths) - k :]) <= budget:
            best = k
    return best


def test_keep_recent_pairs_finds_the_longest_suffix_that_fits():
    rng = random.Random(0)
    for _ in range(300):
        lengths = [rng.randint(1, 40) for _ in range(rng.randint(0, 12))]
        target, budget = rng.randint(1, 60), rng.randint(1, 300)
        calls = []

        def fits(k, lengths=lengths, target=target, budget=budget, calls=calls):
            calls.append(k)
            return target + sum(lengths[len(lengths) - k :]) <= budget

        assert keep_recent_pairs(len(lengths), fits) == linear_keep(lengths, target, budget)
        assert len(calls) <= 2 + max(1, len(lengths)).bit_length()  # full history, empty, then a binary search
    assert keep_recent_pairs(10, lambda k: True) == 10  # one call when everything fits
    assert keep_recent_pairs(10, lambda k: k <= 3) == 3
    assert keep_recent_pairs(10, lambda k: False) is None  # the target alone does not fit
    assert keep_recent_pairs(0, lambda k: True) == 0
    assert most_recent([1, 2, 3, 4], 2) == [3, 4] and most_recent([1, 2], 0) == [] and most_recent([1], None) == [1]


def test_truncation_drops_the_oldest_pairs_and_never_the_target(tokenizer):
    row = target_row(5)
    full = render_reward_example(row, tokenizer, FeedbackRendering(max_length=None))
    assert full["history_pairs"] == 5 and full["history_dropped"] == 0
    assert full["chosen_ids"] == chat_ids(tokenizer, row["history_text"], row["prompt"], row["chosen"])
    # a budget between "3 most recent pairs" and "4 most recent pairs"
    three = max(len(chat_ids(tokenizer, history(5)[2:], row["prompt"], r)) for r in (row["chosen"], row["rejected"]))
    budget = three + 3
    cut = render_reward_example(row, tokenizer, FeedbackRendering(max_length=budget))
    assert cut["history_pairs"] == 3 and cut["history_dropped"] == 2
    assert max(len(cut["chosen_ids"]), len(cut["rejected_ids"])) <= budget
    text = tokenizer.decode(cut["chosen_ids"])
    for i in (0, 1):  # the oldest pairs are gone
        assert f"question {i}\n" not in text and f"liked answer {i}" not in text
    for i in (2, 3, 4):  # the most recent ones stay, renumbered from 1
        assert f"question {i}\n" in text and f"liked answer {i}\n" in text
    assert text.startswith("<|begin|><|user|>\n# Goal") and "Example 1:\n### Instruction\nquestion 2\n" in text
    assert text.endswith("# Instruction\nPlan my weekend trip<|end|><|assistant|>\nBriefly put: go hiking.<|end|>")
    rejected_text = tokenizer.decode(cut["rejected_ids"])
    assert rejected_text.replace("Long essay.", "Briefly put: go hiking.") == text  # same history on both sides
    # the history cap (T) keeps the most recent pairs too
    capped = render_reward_example(row, tokenizer, FeedbackRendering(history_size=2, max_length=None))
    assert capped["chosen_ids"] == chat_ids(tokenizer, history(5)[3:], row["prompt"], row["chosen"])


def test_a_target_too_long_for_any_history_is_kept_whole(tokenizer):
    long_answer = "word " * 300
    row = target_row(3, chosen=long_answer)
    out = render_reward_example(row, tokenizer, FeedbackRendering(max_length=64))
    assert out["history_pairs"] == 0 and out["history_dropped"] == 3
    assert out["chosen_ids"] == chat_ids(tokenizer, [], row["prompt"], long_answer)  # whole, over the budget
    assert len(out["chosen_ids"]) > 64


def test_bad_rows_name_the_row_and_column(tokenizer):
    with pytest.raises(ValueError, match="row 0, column 'history_text', item 1: expected text under 'chosen'"):
        render_reward_example(
            {**target_row(1), "history_text": [history(1)[0], {"prompt": "p", "chosen": None, "rejected": "r"}]},
            tokenizer,
            FeedbackRendering(),
            "row 0",
        )
    with pytest.raises(ValueError, match="row 3: missing column 'history_text'"):
        render_reward_example({"prompt": "p", "chosen": "a", "rejected": "b"}, tokenizer, FeedbackRendering(), "row 3")
    with pytest.raises(ValueError, match="column 'prompt': expected text, got list"):
        render_reward_example({**target_row(1), "prompt": [{"role": "user"}]}, tokenizer, FeedbackRendering())


# ------------------------------------------------------------------------------------------------ the trainer
def small_benchmark(tmp_path, num_instructions=12, history_size=3, **config):
    write_rows(
        multifaceted_rows(num_instructions, seed=0), tmp_path / "src.parquet", MULTIFACETED_FEATURES, progress=False
    )
    settings = dict(test_instructions=2, history_size=history_size, seed=1, **config)
    configs, _ = build_multifacet_cf(tmp_path / "src.parquet", MultifacetBuildConfig(**settings))
    return configs["counterfactual"], configs["responses"]["train"]


def test_prepare_dataset_renders_history_rows_ids_and_ready_rows(tiny_lm_path, tokenizer, tmp_path, caplog):
    counterfactual, responses = small_benchmark(tmp_path)
    rows = attach_history(counterfactual["train"].select(range(6)), responses, lazy=False)
    args = PersonalizedRewardConfig(output_dir=str(tmp_path / "rm"), max_length=1024, **COMMON)
    trainer = PersonalizedRewardTrainer(
        model=str(tiny_lm_path), args=args, train_dataset=rows, processing_class=tokenizer
    )
    for index in range(6):
        row = rows[index]
        assert trainer.train_dataset[index]["chosen_ids"] == chat_ids(
            tokenizer, row["history_text"], row["prompt"], row["chosen"]
        )
        assert trainer.train_dataset[index]["rejected_ids"] == chat_ids(
            tokenizer, row["history_text"], row["prompt"], row["rejected"]
        )
    # history ids + the responses table, and a lazily attached history, give the same inputs
    by_ids = PersonalizedRewardTrainer(
        model=str(tiny_lm_path),
        args=args,
        train_dataset=counterfactual["train"].select(range(6)),
        eval_dataset=attach_history(counterfactual["test"].select(range(4)), responses, lazy=True),
        processing_class=tokenizer,
        responses=responses,
    )
    assert by_ids.train_dataset["chosen_ids"] == trainer.train_dataset["chosen_ids"]
    assert by_ids.eval_dataset[0]["chosen_ids"][:5] == trainer.train_dataset[0]["chosen_ids"][:5]
    # the ablation: the same template with no examples
    ablation = PersonalizedRewardConfig(output_dir=str(tmp_path / "rm"), include_history=False, **COMMON)
    blind = PersonalizedRewardTrainer(
        model=str(tiny_lm_path), args=ablation, train_dataset=rows, processing_class=tokenizer
    )
    assert blind.train_dataset[0]["chosen_ids"] == chat_ids(tokenizer, [], rows[0]["prompt"], rows[0]["chosen"])
    # rows too long even without history are filtered out, as TRL does; when none is left it is an error
    short = PersonalizedRewardConfig(output_dir=str(tmp_path / "rm"), max_length=60, **COMMON)
    with pytest.raises(InputError, match="the train dataset: all 6 rows are longer than max_length=60"):
        PersonalizedRewardTrainer(model=str(tiny_lm_path), args=short, train_dataset=rows, processing_class=tokenizer)
    # ready TRL rows pass through untouched
    ready = Dataset.from_list([{"prompt": "Hi", "chosen": "Yo", "rejected": "Hello there"}] * 2)
    plain = PersonalizedRewardTrainer(
        model=str(tiny_lm_path), args=args, train_dataset=ready, processing_class=tokenizer
    )
    assert tokenizer.decode(plain.train_dataset[0]["chosen_ids"]) == "HiYo<|end|>"
    with pytest.raises(ValueError, match=r"carries history ids .* pass responses="):
        PersonalizedRewardTrainer(
            model=str(tiny_lm_path), args=args, train_dataset=counterfactual["train"], processing_class=tokenizer
        )
    with pytest.raises(TypeError, match="needs a PersonalizedRewardConfig"):
        from trl import RewardConfig

        PersonalizedRewardTrainer(
            model=str(tiny_lm_path), args=RewardConfig(output_dir=str(tmp_path), **COMMON), train_dataset=rows
        )


# ------------------------------------------------------------------------------------------------- learning
def twins_adjacent(rows):
    """Counterfactual rows with the two orientations of each target pair (opposite users) side by side."""
    groups = {}
    for row in rows:
        key = (row["instruction_id"], row["dimension"], frozenset((row["chosen_id"], row["rejected_id"])))
        groups.setdefault(key, []).append(row)
    return [row for group in groups.values() if len(group) == 2 for row in group]


@pytest.fixture(scope="module")
def trained(tiny_lm_path, tmp_path_factory, learning_seed):
    """Train on counterfactual style users (both orientations of every pair, adjacent, sequential batches), T = 2.

    The synthetic responses are cut to their style and background markers ("Picture this vividly: In plain words for
    beginners,"): a 2-layer, 64-wide model from random init must compare them with the liked / not-liked responses
    of the history through its last-token reward head, which the full four-marker answers make too slow for a CPU
    test (all four dimensions, full answers: 0.50 after 300 steps).

    On counterfactual pairs the persona-blind optimum is a constant reward, and a short run can settle in it before it
    finds the history: at 3 epochs learning seed 1 stayed at 0.60 (and lr 5e-4 left seed 0 at 0.50). 5 epochs (188
    steps of 16, lr 2e-4) give 0.71-0.87 over learning seeds 0-4."""
    folder = tmp_path_factory.mktemp("reward_model")
    source = []
    for row in multifaceted_rows(120, seed=learning_seed):
        source.append({**row, "output": row["output"].split(" Here is how")[0]})
    write_rows(source, folder / "src.parquet", MULTIFACETED_FEATURES, progress=False)
    config = MultifacetBuildConfig(
        test_instructions=20,
        history_size=2,
        seed=learning_seed + 1,
        train_pairing="counterfactual",
        dimensions=("style",),
    )
    configs, _ = build_multifacet_cf(folder / "src.parquet", config)
    responses = configs["responses"]["train"]
    train = twins_adjacent(attach_history(configs["counterfactual"]["train"], responses, lazy=False))
    test = attach_history(configs["counterfactual"]["test"], responses, lazy=False)
    args = PersonalizedRewardConfig(
        output_dir=str(folder / "rm"),
        history_size=2,
        max_length=512,
        per_device_train_batch_size=16,
        learning_rate=2e-4,
        lr_scheduler_type="constant",
        num_train_epochs=1,
        train_sampling_strategy="sequential",
        **{**COMMON, "seed": learning_seed},
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    trainer = PersonalizedRewardTrainer(
        model=str(tiny_lm_path),
        args=args,
        train_dataset=Dataset.from_list(pair_adjacent_epochs(train, epochs=5, seed=learning_seed)),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(str(folder / "rm"))
    trainer.create_model_card()  # TRL writes it with checkpoints and pushes; save_strategy="no" here
    return trainer, test, folder


@pytest.mark.learning
def test_reward_model_uses_the_history_and_is_chance_without_it(trained, tmp_path, check_learning):
    """Measured (600 train rows x 5 epochs, held-out 120 rows of 20 unseen instructions): accuracy with history
    0.71-0.87 over learning seeds 0-4, without history 0.500 (exactly: twin rows then have identical inputs)."""
    trainer, test, _ = trained
    output = tmp_path / "table1.json"
    results = evaluate_reward_model(
        trainer.model, trainer.processing_class, test, trainer.args.rendering(), output=output, progress=False
    )
    table = results["table"]
    assert list(table) == ["style", "overall"] and table["overall"]["num_pairs"] == len(test) == 120
    check_learning("held-out accuracy with history", table["overall"]["with_history"], 0.62)
    assert abs(table["overall"]["without_history"] - 0.5) <= 0.02
    assert results["mean_history_pairs"] == 2
    assert json.loads(output.read_text())["table"] == table
    with Image.open(output.with_suffix(".png")) as image:
        assert image.format == "PNG" and image.size[0] > 300
    with pytest.raises(FileExistsError):
        evaluate_reward_model(trainer.model, trainer.processing_class, test.select(range(2)), output=output)


def test_saved_reward_model_reloads_with_its_rendering(trained):
    trainer, test, folder = trained
    model, tokenizer, settings = load_reward_model(folder / "rm", device="cpu")
    assert settings == trainer.args.rendering().to_dict() and settings["history_size"] == 2
    card = (folder / "rm" / "README.md").read_text()
    assert "## Personalized reward model" in card and "| history pairs (T) | 2 |" in card
    rows = test.select(range(16))
    again = evaluate_reward_model(model, tokenizer, rows, FeedbackRendering(**settings), progress=False)
    first = evaluate_reward_model(
        trainer.model, trainer.processing_class, rows, trainer.args.rendering(), progress=False
    )
    assert again["table"] == first["table"]


def test_rendering_file_round_trip_and_bad_files(tmp_path):
    rendering = FeedbackRendering(history_size=3, max_length=256, include_history=False)
    path = write_rendering_file(tmp_path, rendering)
    assert path == tmp_path / RENDERING_FILE and json.loads(path.read_text()) == {"rendering": rendering.to_dict()}
    assert FeedbackRendering.from_dict(read_rendering_file(tmp_path)) == rendering
    write_rendering_file(tmp_path, FeedbackRendering())  # a later save of the same model replaces it
    assert read_rendering_file(tmp_path) == FeedbackRendering().to_dict()
    assert sorted(p.name for p in tmp_path.iterdir()) == [RENDERING_FILE]  # no staging left behind
    assert read_rendering_file(tmp_path / "elsewhere") == {}  # no file: a model trained elsewhere
    # a setting this version does not know is ignored; a bad value is refused
    assert FeedbackRendering.from_dict({"history_size": 4, "future_setting": 1}) == FeedbackRendering(history_size=4)
    with pytest.raises(ValueError, match="history_size"):
        FeedbackRendering.from_dict({"history_size": -1})
    for text in ("{not json", "[1, 2]", '{"rendering": 3}'):
        (tmp_path / RENDERING_FILE).write_text(text)
        with pytest.raises(ValueError, match=f"{RENDERING_FILE}: "):
            read_rendering_file(tmp_path)


def test_column_values_and_history_attachment():
    rows = [{"dimension": "style", "x": 1}, {"dimension": "harmlessness"}]
    assert column_values(rows, "dimension") == ["style", "harmlessness"]
    assert column_values(rows, "x") is None and column_values([], "x") is None
    data = Dataset.from_list(rows)
    assert column_values(data, "dimension") == ["style", "harmlessness"] and column_values(data, "y") is None
    assert attach_history_texts(rows, responses=data) is rows  # not a Dataset with history ids: unchanged
    assert attach_history_texts(data) is data


def test_reward_package_imports_neither_torch_nor_the_trainers():
    modules = ("torch", "transformers", "trl", "personalign.trainers")
    code = (
        "import sys, personalign.reward.evaluation, personalign.reward.rejection_sampling; "
        f"print([m for m in {modules!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    assert done.stdout.strip() == "[]"


def test_accuracy_table_layout():
    correct = {"with_history": [True, False, True, True, None], "without_history": [True, False, False, True, True]}
    dimensions = ["harmlessness", "style", "custom", "style", "style"]
    table = accuracy_table(correct, dimensions)
    assert list(table) == ["style", "harmlessness", "custom", "overall"]  # Table 1's order, then others, then overall
    assert table["style"] == {
        "with_history": 0.5,
        "num_scored_with_history": 2,
        "without_history": 2 / 3,
        "num_pairs": 3,
    }
    assert table["overall"]["with_history"] == 0.75 and table["overall"]["without_history"] == 0.6
    assert list(accuracy_table({"x": [True, False]})) == ["overall"]
    with pytest.raises(ValueError, match="one entry per row"):
        accuracy_table({"x": [True]}, ["style", "style"])


# ------------------------------------------------------------------------------------------ generative baseline
class ScriptedBackend(GenerationBackend):
    name = "scripted"

    def __init__(self, script):
        self.script = script
        self.prompts = []

    def _generate(self, prompts, max_new_tokens, temperature, top_p, seed):
        self.prompts.extend(prompts)
        return [self.script(messages[-1]["content"]) for messages in prompts]


def judge_rows(count=40):
    return [
        {
            **target_row(2, instruction=f"task {i}", chosen=f"GOOD answer {i}", rejected=f"bad answer {i}"),
            "dimension": "style" if i % 2 else "informativeness",
        }
        for i in range(count)
    ]


def response_shown_as(content, letter):
    return content.split(f"###Response {letter}:\n")[1].split("\n\n###End")[0]


def test_b1_judge_randomizes_order_and_maps_verdicts_back():
    rows = judge_rows()
    oracle = ScriptedBackend(lambda c: "Thinking... [[A]]" if "GOOD" in response_shown_as(c, "A") else "So: [[B]]")
    report = FeedbackRewardJudge(oracle, seed=3).judge(rows)
    assert report.accuracy == 1.0 and report.num_unparsable == 0  # whatever the order, the verdict is mapped back
    assert 10 <= sum(report.swapped) <= 30 and 0.25 <= report.first_position_rate <= 0.75
    for row, swapped, prompt in zip(rows, report.swapped, oracle.prompts, strict=True):
        first, second = (row["rejected"], row["chosen"]) if swapped else (row["chosen"], row["rejected"])
        pairs = [PairItem(**p) for p in row["history_text"]]
        assert prompt == feedback_judge_messages(pairs, row["prompt"], first, second)
    assert FeedbackRewardJudge(oracle, seed=3).judge(rows).swapped == report.swapped  # seeded
    assert FeedbackRewardJudge(oracle, seed=4).judge(rows).swapped != report.swapped

    always_a = FeedbackRewardJudge(ScriptedBackend(lambda c: "[[A]]"), seed=3).judge(rows)
    assert always_a.accuracy == 1 - sum(report.swapped) / len(rows)  # position bias shows as chance-level accuracy
    fixed = FeedbackRewardJudge(ScriptedBackend(lambda c: "[[A]]"), randomize_order=False).judge(rows)
    assert fixed.accuracy == 1.0 and not any(fixed.swapped)


def test_b1_judge_is_an_llm_judge():
    assert issubclass(FeedbackRewardJudge, LLMJudge) and FeedbackRewardJudge.name == "feedback_reward_b1"


def test_b1_judge_counts_unparsable_outputs():
    rows = judge_rows(8)
    answers = iter(["[[A]]", "no idea", "[[Tie]]", "[[B]]", "", "[[A]]", "Response B is better", "[[A]]"])
    report = FeedbackRewardJudge(ScriptedBackend(lambda c: next(answers)), randomize_order=False).judge(rows)
    assert report.num_unparsable == 3  # no verdict, a tie (B.1 offers none), an empty output
    assert report.wins == 3 and report.losses == 2 and report.accuracy == 3 / 5
    assert report.accuracy_unparsable_as_chance == (3 + 1.5) / 8
    table = report.table()
    assert list(table) == ["style", "informativeness", "overall"]
    assert table["overall"]["generative_judge"] == 3 / 5 and table["overall"]["num_scored_generative_judge"] == 5
    summary = report.to_dict()
    assert summary["accuracy"] == 3 / 5 and summary["num_unparsable"] == 3 and summary["table"] == table


def test_generate_personalized_uses_the_b2_prompt():
    rows = judge_rows(3)
    backend = ScriptedBackend(lambda c: f"reply to {c.rsplit(chr(10), 1)[-1]}")
    outputs = generate_personalized(backend, rows, max_new_tokens=8)
    assert outputs == ["reply to task 0", "reply to task 1", "reply to task 2"]
    assert backend.prompts[0] == feedback_generation_messages(
        [PairItem(**p) for p in rows[0]["history_text"]], "task 0"
    )
    blind = ScriptedBackend(lambda c: "x")
    generate_personalized(blind, rows, FeedbackRendering(include_history=False))
    assert blind.prompts[0] == feedback_generation_messages([], "task 0")
    assert "Example 1" not in blind.prompts[0][0]["content"]
