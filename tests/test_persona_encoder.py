"""PersonaEncoder: loading and saving in every layout, encoding, and contrastive training that learns."""

import json

import numpy as np
import pytest
import torch

from personalign import PersonaEncoder, PersonaEncoderTrainer, PersonaEncoderTrainingArguments
from personalign.data.synthetic import alignx_rows
from personalign.encoder import alignx_excerpts, evaluate_encoder, persona_document, split_personas
from personalign.personas.persona import Persona

TEXTS = [
    "Concise communication style: keep it short.",
    "I would love a long and detailed answer about gardening, with every step explained.",
    "ok",
]


def _training_args(tmp_path, **overrides):
    settings = dict(
        output_dir=str(tmp_path / "checkpoints"),
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        warmup_steps=0,
        lr_scheduler_type="constant",
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        seed=0,
    )
    settings.update(overrides)
    return PersonaEncoderTrainingArguments(**settings)


def test_plain_backbone_save_and_load_give_identical_embeddings(tiny_encoder_path, tmp_path):
    from transformers import AutoModel

    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path, projection_dim=16)
    embeddings = encoder.encode(TEXTS)
    assert embeddings.shape == (3, 16) and np.allclose(np.linalg.norm(embeddings, axis=1), 1.0)
    backbone = AutoModel.from_pretrained(tiny_encoder_path)
    for name, value in backbone.state_dict().items():
        assert torch.equal(value, encoder.backbone.state_dict()[name]), name  # loaded, not re-initialised

    encoder.save_pretrained(tmp_path / "encoder")
    # The PersonaEncoder's config at the root, sentence-transformers' modules around it; safetensors, no pickles.
    files = {p.relative_to(tmp_path / "encoder").as_posix() for p in (tmp_path / "encoder").rglob("*") if p.is_file()}
    assert {"config.json", "modules.json", "0_Transformer/model.safetensors", "0_Transformer/tokenizer.json"} <= files
    assert "2_Dense/model.safetensors" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    reloaded = PersonaEncoder.from_pretrained(tmp_path / "encoder")
    assert np.array_equal(reloaded.encode(TEXTS), embeddings)
    assert type(AutoModel.from_pretrained(tmp_path / "encoder")).__name__ == "PersonaEncoder"
    with pytest.raises(ValueError, match="cannot be set when loading"):
        PersonaEncoder.from_pretrained(tmp_path / "encoder", pooling="cls")


def test_loads_a_sentence_transformers_folder(tiny_encoder_path, tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(str(tiny_encoder_path), max_seq_length=128)
    modules = [transformer, Pooling(64, "mean"), Dense(64, 24), Normalize()]  # the all-MiniLM layout, plus Dense
    SentenceTransformer(modules=modules, device="cpu").save(str(tmp_path / "st"))
    reference = SentenceTransformer(str(tmp_path / "st"), device="cpu")

    encoder = PersonaEncoder.from_pretrained(tmp_path / "st")
    assert (encoder.config.pooling, encoder.config.projection_dim, encoder.config.projection_activation) == (
        "mean",
        24,
        "tanh",
    )
    assert np.abs(encoder.encode(TEXTS) - reference.encode(TEXTS)).max() < 1e-6
    # And back: the same embeddings through sentence-transformers.
    assert np.abs(encoder.to_sentence_transformer().encode(TEXTS) - reference.encode(TEXTS)).max() < 1e-6


def test_encode_persona_embeds_its_documented_rendering(tiny_encoder_path):
    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path)
    personas = [Persona.from_alignx_row(row) for row in alignx_rows(2, seed=0)]
    single = encoder.encode_persona(personas[0])
    assert single.shape == (64,)
    assert np.array_equal(single, encoder.encode(persona_document(personas[0])))
    both = encoder.encode_persona(personas)
    assert both.shape == (2, 64) and not np.allclose(both[0], both[1])
    assert "**This person has commented on some posts:**" in persona_document(personas[0])


def test_encode_batches_and_order_do_not_change_results(tiny_encoder_path):
    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path)
    texts = TEXTS * 5
    one_by_one = np.stack([encoder.encode(t) for t in texts])
    assert np.abs(encoder.encode(texts, batch_size=4) - one_by_one).max() < 1e-5
    assert encoder.encode(texts, convert_to_tensor=True).dtype == torch.float32


@pytest.mark.learning
def test_training_raises_held_out_retrieval_well_above_chance(
    tiny_encoder_path, tmp_path, learning_seed, check_learning
):
    """60 synthetic personas (18 held out), 80 steps. Measured over learning seeds 0-3 (`make margins`): recall@1
    3.4-4.8x chance after training, a gain of 0.049-0.096; pair AUC gain 0.027-0.076 (200 steps do no better)."""
    rows = alignx_rows(240, seed=learning_seed, num_personas=60, with_metadata=True)
    train, held_out = split_personas(alignx_excerpts(rows), 0.3, seed=learning_seed)
    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path)
    before = evaluate_encoder(encoder, held_out)
    initial = encoder.backbone.embeddings.word_embeddings.weight.detach().clone()

    args = _training_args(tmp_path, max_steps=80, seed=learning_seed)
    trainer = PersonaEncoderTrainer(model=encoder, args=args, train_dataset=train)
    trainer.train()
    after = evaluate_encoder(encoder, held_out)

    assert not torch.equal(initial, encoder.backbone.embeddings.word_embeddings.weight)  # the user's encoder trained
    check_learning("recall@1 / chance", after["recall@1"] / after["chance_recall@1"], 2.5)
    check_learning("recall@1 gain", after["recall@1"] - before["recall@1"], 0.025)
    check_learning("pair AUC gain", after["pair_auc"] - before["pair_auc"], 0.01)


def test_cli_train_and_eval_encoder(tiny_encoder_path, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from personalign.cli import app
    from personalign.io import write_rows

    data = tmp_path / "alignx.jsonl"
    write_rows(alignx_rows(80, seed=0, num_personas=20, with_metadata=True), data)
    output = tmp_path / "encoder"
    common = ["train", "encoder", "--model_name_or_path", str(tiny_encoder_path), "--dataset_name", str(data)]
    common += ["--output_dir", str(output), "--report_to", "none", "--seed", "0"]
    small = ["--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--warmup_steps", "0"]
    small += ["--eval_fraction", "0.25"]
    runner = CliRunner()
    result = runner.invoke(app, [*common, *small, "--max_steps", "4", "--save_steps", "2"])
    assert result.exit_code == 0, result.output
    assert {"config.json", "modules.json", "README.md", "eval_results.json"} <= {p.name for p in output.iterdir()}
    assert (output / "0_Transformer" / "model.safetensors").is_file()
    card = (output / "README.md").read_text()
    assert "model-index" in card and "recall_at_1" in card and "DPORE" in card and "temperature" in card
    results = json.loads((output / "eval_results.json").read_text())
    assert set(results) >= {"before", "after"} and 0 <= results["after"]["recall@1"] <= 1

    # An existing output is never replaced silently; an interrupted run resumes from its last checkpoint.
    again = runner.invoke(app, [*common, *small, "--max_steps", "6"])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    starts = []
    original_train = PersonaEncoderTrainer.train

    def recording_train(self, *args, **kwargs):
        starts.append(kwargs.get("resume_from_checkpoint"))
        return original_train(self, *args, **kwargs)

    monkeypatch.setattr(PersonaEncoderTrainer, "train", recording_train)
    resumed = runner.invoke(app, [*common, *small, "--max_steps", "6", "--save_steps", "2", "--resume", "--overwrite"])
    assert resumed.exit_code == 0, resumed.output
    assert starts == [str(tmp_path / "encoder-checkpoints" / "checkpoint-4")]
    state = json.loads((tmp_path / "encoder-checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6

    # Started again with --overwrite: the earlier run's checkpoints go (moved aside, then deleted), so a later
    # --resume continues the new run.
    fresh = runner.invoke(app, [*common, *small, "--max_steps", "2", "--save_steps", "2", "--overwrite"])
    assert fresh.exit_code == 0, fresh.output
    assert [p.name for p in (tmp_path / "encoder-checkpoints").iterdir()] == ["checkpoint-2"]
    assert not list(tmp_path.glob("*earlier-run*"))
    # Resuming a finished run would train a step past max_steps: refused, naming the checkpoint.
    finished = runner.invoke(
        app, [*common, *small, "--max_steps", "2", "--save_steps", "2", "--resume", "--overwrite"]
    )
    assert finished.exit_code != 0 and "already reached max_steps=2 (checkpoint-2)" in str(finished.exception)

    scores = tmp_path / "scores.json"
    result = runner.invoke(
        app, ["eval", "encoder", "--model", str(output), "--dataset", str(data), "--output", str(scores)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(scores.read_text())
    assert {"recall@1", "recall@5", "mrr", "pair_auc", "chance_recall@1"} <= set(metrics)


def test_cli_encoder_errors_are_one_line(tiny_encoder_path, tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"persona_id": "a", "body": "x"}) + "\n")
    command = [sys.executable, "-m", "personalign", "eval", "encoder", "--model", str(tiny_encoder_path)]
    command += ["--dataset", str(bad), "--format", "table", "--output", str(tmp_path / "out.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # (progress bars aside)
    assert errors == [f"error: {bad}: missing column(s) ['text']; the columns are ['persona_id', 'body']."]
    assert not (tmp_path / "out.json").exists()


def test_config_reads_the_old_max_length_name_and_checks_its_settings(tiny_encoder_path):
    from transformers import AutoConfig

    from personalign import PersonaEncoderConfig

    backbone = AutoConfig.from_pretrained(tiny_encoder_path)
    old = PersonaEncoderConfig(backbone_config=backbone, max_length=64)  # a config saved before the rename
    assert old.max_seq_length == 64 and "max_length" not in old.to_dict()
    assert PersonaEncoderConfig.from_dict(old.to_dict()).max_seq_length == 64
    bad = [
        (dict(max_length=64, max_seq_length=32), "disagree"),
        (dict(max_seq_length=0), "max_seq_length must be a positive integer"),
        (dict(prompts={"query": 1}), "prompts must be a dict"),
        (dict(prompts={"query": "q: "}, default_prompt_name="passage"), r"default_prompt_name 'passage' is not one"),
    ]
    for settings, message in bad:
        with pytest.raises(ValueError, match=message):
            PersonaEncoderConfig(backbone_config=backbone, **settings)


@pytest.mark.parametrize(
    ("settings", "include_prompt"),
    [
        ({}, True),  # mean pooling, normalised: the default
        ({"pooling": "cls", "projection_dim": 16}, True),
        ({"pooling": "max", "normalize": False}, True),
        ({"pooling": "mean_sqrt_len_tokens", "projection_dim": 8}, False),
        ({"pooling": "lasttoken"}, False),
        ({"pooling": "weightedmean", "normalize": False}, True),
    ],
)
def test_a_saved_encoder_embeds_alike_in_both_libraries(tiny_encoder_path, tmp_path, settings, include_prompt):
    """save_pretrained -> PersonaEncoder.from_pretrained and SentenceTransformer: the same embeddings, with the
    query / document prompts, the default prompt, pooling without prompt tokens, projection and normalisation."""
    from sentence_transformers import SentenceTransformer

    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path, **settings)
    encoder.config.prompts = {"query": "query: ", "document": "passage: "}
    encoder.config.default_prompt_name = "query"
    encoder.to_sentence_transformer().set_pooling_include_prompt(include_prompt)  # the same Pooling module
    encoder.save_pretrained(tmp_path / "encoder")
    reloaded = PersonaEncoder.from_pretrained(tmp_path / "encoder")
    assert reloaded.config.include_prompt is include_prompt and reloaded.config.default_prompt_name == "query"
    model = SentenceTransformer(str(tmp_path / "encoder"), device="cpu")

    def close(a, b):
        return torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=1e-6)

    for ours in (encoder, reloaded):
        assert close(ours.encode(TEXTS), model.encode(TEXTS))  # the default prompt, "query: "
        assert close(ours.encode(TEXTS, prompt_name="query"), model.encode_query(TEXTS))
        assert close(ours.encode(TEXTS, prompt_name="document"), model.encode_document(TEXTS))
        assert close(ours.encode(TEXTS, prompt=""), model.encode(TEXTS, prompt=""))
    assert not close(encoder.encode(TEXTS), encoder.encode(TEXTS, prompt=""))  # the prompt is applied
    norms = np.linalg.norm(model.encode(TEXTS), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-6) == settings.get("normalize", True)


def test_training_drives_the_encoders_own_modules_and_loading_refuses_what_it_cannot_read(tiny_encoder_path, tmp_path):
    from datasets import Dataset

    from personalign import PersonaEncoderConfig

    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path)
    excerpts = Dataset.from_dict({"persona_id": ["a", "a", "b", "b"], "text": ["x y", "y z", "p q", "q r"]})
    trainer = PersonaEncoderTrainer(encoder, _training_args(tmp_path), train_dataset=excerpts)
    assert all(a is b for a, b in zip(trainer.model.children(), encoder.sentence_transformer_modules(), strict=True))

    with pytest.raises(ValueError, match="built around a loaded backbone"):
        PersonaEncoder(PersonaEncoderConfig(backbone_config=encoder.config.backbone_config))
    old = tmp_path / "old"  # the single-file layout: config.json + model.safetensors, no modules.json
    old.mkdir()
    encoder.config.save_pretrained(old)
    with pytest.raises(ValueError, match="single-file layout"):
        PersonaEncoder.from_pretrained(old)
    encoder.save_pretrained(tmp_path / "edited")
    config = json.loads((tmp_path / "edited" / "config.json").read_text())
    config["pooling"] = "cls"  # no longer what 1_Pooling says
    (tmp_path / "edited" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"disagree .*pooling 'cls' vs 'mean'"):
        PersonaEncoder.from_pretrained(tmp_path / "edited")


def test_prompts_on_the_tiny_encoder_prepend_text_and_count_in_the_limit(tiny_encoder_path):
    encoder = PersonaEncoder.from_pretrained(tiny_encoder_path)
    encoder.config.prompts = {"query": "query: "}
    encoder.config.default_prompt_name = "query"
    prompted = encoder.tokenize(["ok"])
    plain = encoder.tokenize(["ok"], prompt="")
    assert prompted["input_ids"].shape[1] > plain["input_ids"].shape[1] and "prompt_length" not in plain
    assert np.array_equal(encoder.encode(["ok"]), encoder.encode(["query: ok"], prompt=""))
    encoder.max_seq_length = 4
    assert encoder.tokenize(["a long text of many words"])["input_ids"].shape[1] == 4
    assert not hasattr(encoder, "max_length")  # renamed: max_seq_length, as sentence-transformers calls it


# ------------------------------------------------------------------------- augmentation: workers, epochs, resume
def _augmentation_excerpts():
    from datasets import Dataset

    persona_ids, texts = [], []
    for user in range(6):
        for k in range(3):
            persona_ids.append(f"u{user}")
            texts.append(f"user {user} writes note {k}: the long walk home took us past the river and the mill")
    return Dataset.from_dict({"persona_id": persona_ids, "text": texts})


class _RecordingEncoderTrainer(PersonaEncoderTrainer):
    """Records the token ids of every training batch, in the training process (the collator runs in workers)."""

    def compute_loss(self, model, inputs, *args, **kwargs):
        self.batches.append({key: value.tolist() for key, value in inputs.items() if key.endswith("input_ids")})
        return super().compute_loss(model, inputs, *args, **kwargs)


def _augmented_run(path, tmp_path, resume=None, **settings):
    encoder = PersonaEncoder.from_pretrained(path)
    args = _training_args(
        tmp_path,
        per_device_train_batch_size=4,
        num_train_epochs=2,
        truncation_probability=0.5,
        **settings,
    )
    trainer = _RecordingEncoderTrainer(model=encoder, args=args, train_dataset=_augmentation_excerpts())
    trainer.batches = []
    trainer.train(resume_from_checkpoint=resume)
    return trainer.batches, {name: value.detach().clone() for name, value in encoder.state_dict().items()}


def test_augmentation_is_the_same_with_dataloader_workers(tiny_encoder_path, tmp_path):
    """Truncation is a function of (seed, epoch, row): two (persistent) workers cut exactly as the training process
    does, in both epochs, and the epochs cut differently."""
    plain, _ = _augmented_run(tiny_encoder_path, tmp_path / "plain")
    workers, _ = _augmented_run(
        tiny_encoder_path,
        tmp_path / "workers",
        dataloader_num_workers=2,
        dataloader_persistent_workers=True,
    )
    assert len(plain) >= 4 and workers == plain

    from personalign.encoder import PersonaContrastiveCollator, contrastive_rows

    rows = [dict(row, row_index=i) for i, row in enumerate(contrastive_rows(_augmentation_excerpts(), seed=0))]
    collator = PersonaContrastiveCollator(preprocess_fn=None, truncation_probability=0.5, seed=0)
    epoch0 = collator.augment(rows)
    assert collator.augment(rows[::-1])[::-1] == epoch0  # a row's cut does not depend on its batch or position
    collator.set_epoch(1)
    assert collator.augment(rows) != epoch0


def test_a_resumed_encoder_run_equals_an_uninterrupted_one(tiny_encoder_path, tmp_path):
    """Checkpoints at every step; the run resumed from a mid-epoch-0 checkpoint ends with the uninterrupted run's
    weights (the augmentation no longer restarts from the seed) and trains the same batches after the resume point."""
    import shutil

    straight, expected = _augmented_run(tiny_encoder_path, tmp_path / "straight", save_strategy="steps", save_steps=1)
    checkpoints = sorted((tmp_path / "straight" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name[11:]))
    resume_at = checkpoints[1]  # step 2: mid-epoch 0
    copy = tmp_path / "resumed" / "checkpoints"
    copy.mkdir(parents=True)
    shutil.copytree(resume_at, copy / resume_at.name)
    resumed, got = _augmented_run(
        tiny_encoder_path, tmp_path / "resumed", resume=str(copy / resume_at.name), save_strategy="no"
    )
    assert resumed == straight[2:]
    assert expected.keys() == got.keys()
    assert max((expected[name] - got[name]).abs().max().item() for name in expected) <= 1e-6
