import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from personalign import Persona, ica_messages, pba_messages
from personalign.data.synthetic import alignx_rows
from personalign.testing import build_tiny_causal_lm, build_tiny_encoder, tiny_causal_lm


def test_tiny_causal_lm_loads_with_auto_classes(tiny_lm_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    assert model.config.model_type == "llama"
    assert model.config._name_or_path == str(tiny_lm_path)  # what TRL reloads the reference model from
    assert (tiny_lm_path / "model.safetensors").exists()
    assert not list(tiny_lm_path.glob("*.bin"))
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    batch = tokenizer(["Concise answer: the garden project is fine."], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], len(tokenizer))
    generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == batch["input_ids"].shape[1] + 3


def test_chat_template_prompt_is_a_token_prefix_and_completion_ends_with_eos(tiny_lm_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    for row in alignx_rows(6, seed=0):
        persona = Persona.from_alignx_row(row)
        for prompt in (ica_messages(row["prompt"], persona), pba_messages(row["prompt"], persona.profile_text())):
            prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"]
            full = tokenizer.apply_chat_template(
                [*prompt, {"role": "assistant", "content": row["chosen"]}],
                return_dict=True,
                return_assistant_tokens_mask=True,
            )
            assert full["input_ids"][: len(prompt_ids)] == prompt_ids
            completion = full["input_ids"][len(prompt_ids) :]
            assert completion[-1] == tokenizer.eos_token_id
            assert tokenizer.decode(completion[:-1]) == row["chosen"]
            # the assistant mask marks exactly the completion (for assistant-only loss)
            assert full["assistant_masks"] == [0] * len(prompt_ids) + [1] * len(completion)


def test_builds_are_deterministic_under_the_seed(tmp_path):
    first = build_tiny_causal_lm(tmp_path / "a", seed=3)
    second = build_tiny_causal_lm(tmp_path / "b", seed=3)
    other = build_tiny_causal_lm(tmp_path / "c", seed=4)
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()
    weights_a, weights_b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    weights_c = load_file(other / "model.safetensors")
    assert not torch.equal(weights_a["model.embed_tokens.weight"], weights_c["model.embed_tokens.weight"])
    enc_a, enc_b = build_tiny_encoder(tmp_path / "e1", seed=1), build_tiny_encoder(tmp_path / "e2", seed=1)
    assert (enc_a / "tokenizer.json").read_text() == (enc_b / "tokenizer.json").read_text()
    encoder_a, encoder_b = load_file(enc_a / "model.safetensors"), load_file(enc_b / "model.safetensors")
    assert all(torch.equal(encoder_a[k], encoder_b[k]) for k in encoder_a)


def test_builds_do_not_depend_on_earlier_random_state(tmp_path):
    import random

    import numpy as np

    first = build_tiny_encoder(tmp_path / "a", seed=1)
    random.random(), np.random.rand(), torch.rand(3)  # anything that ran before (an import, a test) moves these
    second = build_tiny_encoder(tmp_path / "b", seed=1)
    weights_a, weights_b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_cached_builds_are_reused(kit_cache, tiny_lm_path):
    stamp = (tiny_lm_path / "model.safetensors").stat().st_mtime_ns
    assert tiny_causal_lm(cache_dir=kit_cache) == tiny_lm_path
    assert (tiny_lm_path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in kit_cache.iterdir() if p.name.endswith(".partial")]


def test_tiny_encoder_is_bidirectional_bert(tiny_encoder_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_path)
    model = AutoModel.from_pretrained(tiny_encoder_path)
    assert model.config.model_type == "bert"
    batch = tokenizer(["Likes pets, Dislikes travel", "A 30-year-old nurse."], padding=True, return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    assert ids[0] == tokenizer.cls_token_id and tokenizer.sep_token_id in ids
    assert tokenizer.unk_token_id not in ids
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape[:2] == batch["input_ids"].shape and hidden.shape[2] == 64
    # bidirectional: changing the last word changes the first token's state (a causal model could not)
    changed = tokenizer(["Likes pets, Likes travel"], return_tensors="pt")
    with torch.no_grad():
        first_state = model(**changed).last_hidden_state[0, 1]
    assert not torch.allclose(first_state, hidden[0, 1])


def test_sentence_transformers_can_wrap_the_encoder(tiny_encoder_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    module = Transformer(str(tiny_encoder_path))
    encoder = SentenceTransformer(modules=[module, Pooling(module.get_embedding_dimension())])
    embeddings = encoder.encode(["Likes pets", "Dislikes travel"])
    assert embeddings.shape == (2, 64)


def test_a_task_corpus_gives_the_tiny_models_whole_word_tokens(tmp_path, tiny_lm_path, tiny_encoder_path):
    """`corpus=`: the tokenizers learn the task's words (synthetic ALOE here); the default build is unchanged."""
    from personalign.data.synthetic_aloe import aloe_rows

    corpus = [turn["assistant"]["preferred"] for row in aloe_rows(10, 2, 4, seed=5) for turn in row["conversations"]]
    reply = next(aloe_rows(1, 1, 1, seed=0))["conversations"][0]["assistant"]["preferred"]
    for build, default in ((build_tiny_causal_lm, tiny_lm_path), (build_tiny_encoder, tiny_encoder_path)):
        task = AutoTokenizer.from_pretrained(build(tmp_path / build.__name__, seed=0, corpus=corpus))
        generic = AutoTokenizer.from_pretrained(default)
        assert len(task.tokenize(reply)) <= 0.7 * len(generic.tokenize(reply)), build.__name__
        assert task.decode(task(reply, add_special_tokens=False)["input_ids"]).lower() == reply.lower()
