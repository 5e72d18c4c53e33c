"""ICATrainer and PBATrainer: persona rendering in `_prepare_dataset`, per-epoch history redraws, and learning with
flips under reversed personas."""

import pytest
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from personalign.data.alignx import AlignXBuildConfig, render_row
from personalign.data.synthetic import alignx_rows, pair_adjacent_epochs
from personalign.evaluation import compute_alignment_metrics, reverse_alignx_row
from personalign.evaluation.scoring import score_policy_and_reference
from personalign.personas.persona import DIRECTION_COLUMN
from personalign.trainers import ICAConfig, ICATrainer, PBAConfig, PBATrainer, render_for_training

COMMON = dict(
    per_device_train_batch_size=16,
    per_device_eval_batch_size=32,
    learning_rate=1e-3,
    lr_scheduler_type="constant",
    beta=0.1,
    max_length=1024,
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


def golden_row(alignx_space):
    return {
        "prompt": "How should I spend Sunday?",
        "chosen": "Take a short walk.",
        "rejected": "Plan a long, detailed itinerary.",
        DIRECTION_COLUMN: alignx_space.vector({16: 1}),
        "Demographic Information": "A 30-year-old nurse who loves pets.",
        "User-Generated Content": [
            {"prompt": "Post about dogs?", "comment": "Dogs rule.", DIRECTION_COLUMN: alignx_space.vector({59: 1})}
        ],
        "Pair-wise Comparative Feedback": [
            {
                "prompt": "Trip ideas?",
                "chosen": "Go abroad.",
                "rejected": "Stay home.",
                DIRECTION_COLUMN: alignx_space.vector({60: 1, 16: 1}),
            }
        ],
    }


@pytest.mark.parametrize(
    ("trainer_class", "config_class", "user_body"),
    [
        (
            ICATrainer,
            ICAConfig,
            "***Task***\n\n**Post:**\nHow should I spend Sunday?\n\n***Historical Behavior and User Preferences***\n\n"
            "**This person has commented on some posts:**\n\n1. *Post:*\nPost about dogs?\n\n*Comment:*\nDogs rule.\n\n"
            "**This person has chosen or rejected comments on some posts:**\n\n1. *Post:*\nTrip ideas?\n\n"
            "*Chosen:*\nGo abroad.\n\n*Rejected:*\nStay home.\n\nA 30-year-old nurse who loves pets.",
        ),
        (
            PBATrainer,
            PBAConfig,
            "***Task***\n\n**Post:**\nHow should I spend Sunday?\n\n***User Preferences***\n\n"
            "Concise communication style, Likes pets, Likes travel",
        ),
    ],
)
def test_golden_rendering_through_the_chat_template(
    tiny_lm_path, tokenizer, alignx_space, tmp_path, trainer_class, config_class, user_body
):
    data = Dataset.from_list([golden_row(alignx_space)] * 2)
    args = config_class(output_dir=str(tmp_path), keep_full_history=True, **COMMON)
    trainer = trainer_class(model=str(tiny_lm_path), args=args, train_dataset=data, processing_class=tokenizer)
    row = trainer.train_dataset[0]
    system = "historical behavior and preferences" if trainer_class is ICATrainer else "preferences"
    assert tokenizer.decode(row["prompt_ids"]) == (
        f"<|begin|><|system|>\nGenerate a task-specific response based on user {system}.<|end|>"
        f"<|user|>\n{user_body}<|end|><|assistant|>\n"
    )
    assert tokenizer.decode(row["chosen_ids"]) == "Take a short walk.<|end|>"


def test_epoch_zero_is_the_built_config_and_later_epochs_redraw(tiny_lm_path, tokenizer, tmp_path):
    raw = Dataset.from_list(list(alignx_rows(24, seed=4, history_size=(4, 8))))
    args = ICAConfig(output_dir=str(tmp_path), **COMMON)
    trainer = ICATrainer(model=str(tiny_lm_path), args=args, train_dataset=raw, processing_class=tokenizer)
    dataset = trainer.train_dataset
    built = [render_row(row, index, "ica", AlignXBuildConfig(seed=0)) for index, row in enumerate(raw)]
    epoch0 = [tokenizer.decode(dataset[i]["prompt_ids"]) for i in range(len(dataset))]
    expected = [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True) for r in built]
    assert epoch0 == expected  # what `personalign build-dataset alignx --config ica` writes

    dataset.set_epoch(1)
    epoch1 = [tokenizer.decode(dataset[i]["prompt_ids"]) for i in range(len(dataset))]
    assert sum(a != b for a, b in zip(epoch0, epoch1, strict=True)) >= len(dataset) // 2  # new history draws
    assert [dataset[i]["chosen_ids"] for i in range(3)] == [
        trainer.train_dataset.base[i]["chosen_ids"] for i in range(3)
    ]
    again = ICATrainer(model=str(tiny_lm_path), args=args, train_dataset=raw, processing_class=tokenizer)
    again.train_dataset.set_epoch(1)
    assert [tokenizer.decode(again.train_dataset[i]["prompt_ids"]) for i in range(len(dataset))] == epoch1
    dataset.set_epoch(0)
    assert [tokenizer.decode(dataset[i]["prompt_ids"]) for i in range(len(dataset))] == epoch0


def test_training_epochs_see_their_own_draws(tiny_lm_path, tokenizer, tmp_path):
    from transformers import TrainerCallback

    raw = Dataset.from_list(list(alignx_rows(8, seed=4, history_size=(4, 8))))
    seen = []

    class Watch(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            seen.append(trainer.train_dataset.epoch)

    args = PBAConfig(output_dir=str(tmp_path), num_train_epochs=2, **{**COMMON, "per_device_train_batch_size": 4})
    trainer = PBATrainer(model=str(tiny_lm_path), args=args, train_dataset=raw, processing_class=tokenizer)
    trainer.add_callback(Watch())
    trainer.train()
    assert seen == [0, 0, 1, 1]


def test_ready_prompts_pass_through_and_bad_settings_are_refused(tiny_lm_path, tokenizer, tmp_path):
    ready = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": "Hi"}],
                "chosen": [{"role": "assistant", "content": "Yo"}],
                "rejected": [{"role": "assistant", "content": "Hello there"}],
            }
        ]
        * 2
    )
    trainer = PBATrainer(
        model=str(tiny_lm_path),
        args=PBAConfig(output_dir=str(tmp_path), **COMMON),
        train_dataset=ready,
        processing_class=tokenizer,
    )
    assert "<|user|>\nHi<|end|>" in tokenizer.decode(trainer.train_dataset[0]["prompt_ids"])
    assert not hasattr(trainer.train_dataset, "set_epoch")  # nothing to redraw
    with pytest.raises(TypeError, match="ICATrainer needs a ICAConfig"):
        ICATrainer(model=str(tiny_lm_path), args=PBAConfig(output_dir=str(tmp_path), **COMMON), train_dataset=ready)


READY = [
    {
        "prompt": [{"role": "user", "content": f"Hi {i}"}],
        "chosen": [{"role": "assistant", "content": "Yo"}],
        "rejected": [{"role": "assistant", "content": "Hello there"}],
    }
    for i in range(4)
]


@pytest.mark.parametrize("trainer_class", [PBATrainer, ICATrainer])
def test_precomputed_reference_log_probs_where_nothing_is_redrawn(tiny_lm_path, tokenizer, tmp_path, trainer_class):
    """Redraw is on by default; data without persona columns is never redrawn, so precomputing is allowed (map-style:
    the reference log-probs are columns of the prepared rows; iterable: TRL's own refusal, as for stock DPO). Persona
    rows are refused only while they are redrawn each epoch, naming what to set instead."""
    config_class = trainer_class._config_class
    args = config_class(output_dir=str(tmp_path), precompute_ref_log_probs=True, **{**COMMON, "max_steps": 1})
    assert args.redraw_history_each_epoch  # the default
    trainer = trainer_class(
        model=str(tiny_lm_path), args=args, train_dataset=Dataset.from_list(READY), processing_class=tokenizer
    )
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(trainer.train_dataset.column_names)
    trainer.train()

    streamed = Dataset.from_list(READY).to_iterable_dataset()
    with pytest.raises(ValueError, match="not supported with IterableDataset"):  # TRL's message, as stock DPOTrainer
        trainer_class(model=str(tiny_lm_path), args=args, train_dataset=streamed, processing_class=tokenizer)

    raw = Dataset.from_list(list(alignx_rows(4, seed=4, history_size=(1, 2))))
    with pytest.raises(ValueError, match="set redraw_history_each_epoch=False") as refused:
        trainer_class(model=str(tiny_lm_path), args=args, train_dataset=raw, processing_class=tokenizer)
    assert "epoch-0 prompts" in str(refused.value)
    for fixed in ({"redraw_history_each_epoch": False}, {"keep_full_history": True}):
        args = config_class(output_dir=str(tmp_path), precompute_ref_log_probs=True, **{**COMMON, **fixed})
        trainer = trainer_class(model=str(tiny_lm_path), args=args, train_dataset=raw, processing_class=tokenizer)
        assert "ref_chosen_logps" in trainer.train_dataset.column_names


def test_iterable_persona_rows_train_on_the_epoch_zero_draw(tiny_lm_path, tokenizer, tmp_path, caplog):
    raw = Dataset.from_list(list(alignx_rows(4, seed=4, history_size=(1, 2))))
    args = PBAConfig(output_dir=str(tmp_path), **{**COMMON, "max_steps": 1, "per_device_train_batch_size": 2})
    with caplog.at_level("WARNING", logger="personalign.trainers.alignx_trainer"):
        trainer = PBATrainer(
            model=str(tiny_lm_path), args=args, train_dataset=raw.to_iterable_dataset(), processing_class=tokenizer
        )
    assert "drawn once" in caplog.text
    first = next(iter(trainer.train_dataset))
    built = render_row(raw[0], 0, "pba", AlignXBuildConfig(seed=0))
    prompt = tokenizer.apply_chat_template(built["prompt"], tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(first["prompt_ids"]) == prompt
    trainer.train()


class RecordingPBATrainer(PBATrainer):
    """Records every training batch's token ids, in the training process (the collator runs in the workers)."""

    def compute_loss(self, model, inputs, *args, **kwargs):
        self.batches.append(inputs["input_ids"].tolist())
        return super().compute_loss(model, inputs, *args, **kwargs)


def _recorded_batches(path, tokenizer, tmp_path, raw, **settings):
    args = PBAConfig(
        output_dir=str(tmp_path), num_train_epochs=2, **{**COMMON, "per_device_train_batch_size": 4, **settings}
    )
    trainer = RecordingPBATrainer(model=str(path), args=args, train_dataset=raw, processing_class=tokenizer)
    trainer.batches = []
    trainer.train()
    return trainer.batches


def test_persistent_dataloader_workers_train_each_epoch_on_its_own_draw(tiny_lm_path, tokenizer, tmp_path):
    """Persistent workers started in epoch 0 see the epoch each later one is in, and its rows: the batches are those
    of a run without workers, draw for draw."""
    raw = Dataset.from_list(list(alignx_rows(8, seed=4, history_size=(4, 8))))
    plain = _recorded_batches(tiny_lm_path, tokenizer, tmp_path / "plain", raw)
    workers = _recorded_batches(
        tiny_lm_path,
        tokenizer,
        tmp_path / "workers",
        raw,
        dataloader_num_workers=2,
        dataloader_persistent_workers=True,
    )
    assert len(plain) == 4
    sequences = [{tuple(row) for batch in plain[epoch * 2 : epoch * 2 + 2] for row in batch} for epoch in (0, 1)]
    assert sequences[0] != sequences[1]  # epoch 1 trains on a new history draw
    assert workers == plain


def _train_and_flip(trainer_class, config_class, path, tokenizer, tmp_path, num_rows, seed, **settings):
    """Train on counterfactual rows (pairs adjacent, sequential batches; 3 epochs unless `settings` say otherwise),
    then score 128 held-out rows under their persona and under the reversed persona (comments and demographics
    dropped: free text cannot be reversed)."""
    rows = list(alignx_rows(num_rows, seed=2 * seed, history_size=(1, 4)))
    train = Dataset.from_list(pair_adjacent_epochs(rows, epochs=1, seed=seed))
    held_out = Dataset.from_list(list(alignx_rows(128, seed=2 * seed + 1, history_size=(1, 4))))
    args = config_class(
        output_dir=str(tmp_path),
        train_sampling_strategy="sequential",
        **{**COMMON, "num_train_epochs": 3, "seed": seed, **settings},
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    trainer = trainer_class(
        model=model, args=args, train_dataset=train, eval_dataset=held_out, processing_class=tokenizer
    )
    before = trainer.evaluate()["eval_rewards/accuracies"]
    trainer.train()
    after = trainer.evaluate()["eval_rewards/accuracies"]
    style = trainer_class._style
    reversed_rows = held_out.map(lambda row: reverse_alignx_row(row, drop_irreversible_text=True))
    reference = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    original = render_for_training(held_out, style, args.rendering())
    scores = score_policy_and_reference(model, reference, tokenizer, original, batch_size=16)
    flipped = render_for_training(reversed_rows, style, args.rendering())
    flipped_scores = score_policy_and_reference(
        model, reference, tokenizer, flipped, batch_size=16, suffix="_reversed"
    )
    return before, after, compute_alignment_metrics(**scores, **flipped_scores, beta=0.1)


@pytest.mark.learning
def test_pba_learns_and_flips_with_the_persona(tiny_lm_path, tokenizer, tmp_path, learning_seed, check_learning):
    """512 rows x 5 epochs (160 steps of 16, lr 2e-3 decaying linearly). The end point of a constant rate depends on
    the CPU's kernels: at a constant 2e-3, learning seed 0 gave 0.80 on one thread and 0.70 on two; seeds 0-3 gave
    0.70-0.88 (flip rate 0.69-0.73). With the linear decay: 0.76-0.85 over seeds and thread counts. At 3 epochs and a
    constant 1e-3 the accuracy spread 0.64-0.81 (under the former 0.7 threshold on one seed, the reported failure)."""
    before, after, metrics = _train_and_flip(
        PBATrainer,
        PBAConfig,
        tiny_lm_path,
        tokenizer,
        tmp_path,
        512,
        learning_seed,
        num_train_epochs=5,
        learning_rate=2e-3,
        lr_scheduler_type="linear",
    )
    assert before == 0.0
    check_learning("held-out accuracy", after, 0.65)
    assert metrics["alignment_accuracy"] == pytest.approx(after)  # the metric agrees with TRL's rewards/accuracies
    check_learning("flip rate", metrics["flip_rate"], 0.45)
    check_learning("strict flip rate", metrics["strict_flip_rate"], 0.4)


@pytest.mark.learning
def test_ica_learns_and_flips_with_the_persona(tiny_lm_path, tokenizer, tmp_path, learning_seed, check_learning):
    """256 rows x 5 epochs (160 steps of 8, lr 2e-3), one history item in the prompt (long prompts are slow on CPU).
    The reversed ICA prompt keeps only a swapped pair: comments and demographics cannot be reversed, so flips are
    rarer than PBA's. Measured over learning seeds 1-3 (`make margins`, one thread): held-out accuracy 0.0 -> 0.69-0.81,
    flip rate 0.38-0.50, strict 0.33-0.40. At 3 epochs and lr 1e-3 the accuracy spread 0.60-0.74 over seeds 0-3,
    under the former 0.65 threshold on two."""
    before, after, metrics = _train_and_flip(
        ICATrainer,
        ICAConfig,
        tiny_lm_path,
        tokenizer,
        tmp_path,
        256,
        learning_seed,
        num_train_epochs=5,
        learning_rate=2e-3,
        per_device_train_batch_size=8,
        max_history_items=1,
        max_length=768,
    )
    assert before == 0.0
    check_learning("held-out accuracy", after, 0.62)
    assert metrics["alignment_accuracy"] == pytest.approx(after)
    check_learning("flip rate", metrics["flip_rate"], 0.25)
    check_learning("strict flip rate", metrics["strict_flip_rate"], 0.2)


@pytest.mark.parametrize("spelling", ["release", "normalised"])
def test_rendered_rows_keep_the_target_direction_whatever_the_column_spelling(spelling):
    """`render_row` read the direction only under its snake_case name, so DPORE rows made from rows as released
    (`"Preference Direction"`, with a space) carried a null `preference_direction`."""
    rows = list(alignx_rows(4, seed=3))
    if spelling == "normalised":
        rows = [{("preference_direction" if k == DIRECTION_COLUMN else k): v for k, v in row.items()} for row in rows]
    key = DIRECTION_COLUMN if spelling == "release" else "preference_direction"
    rendered = [render_row(row, i, "pba", AlignXBuildConfig()) for i, row in enumerate(rows)]
    assert [r["preference_direction"] for r in rendered] == [row[key] for row in rows]
