"""Generation backends: transformers on the tiny model, the OpenAI-compatible client against a local fake server,
the vLLM extra's import message, and backend specs."""

import json
import sys
import types

import pytest
import torch
from safetensors.torch import save_file

from loopback_openai import LoopbackOpenAI, Reply
from personalign.errors import InputError
from personalign.inference.generation import (
    VLLM_INSTALL_HINT,
    BackendError,
    GenerationBackend,
    OpenAIBackend,
    TransformersBackend,
    VLLMBackend,
    check_local_model,
    load_backend,
    parse_backend_spec,
    public_spec,
    public_url,
)

SECRET = "sk-test-0123456789-secret"


def chat(text, system=None):
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


PROMPTS = [
    chat("Hi."),
    chat("Tell me about the city park and the weather in spring, please, with some detail.", system="Be brief."),
    chat("What is a good book?"),
    chat("Explain gardening " * 6),
    chat("Ok"),
]


# ------------------------------------------------------------------------------------------------- transformers
@pytest.fixture(scope="module")
def backend(tiny_lm_path):
    import torch

    # One thread: the tiny model gains nothing from more, and on a busy 2-core machine extra threads only contend.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield TransformersBackend.from_pretrained(tiny_lm_path, batch_size=2, device="cpu")
    finally:
        torch.set_num_threads(threads)


def test_transformers_batched_equals_one_by_one_greedy(backend):
    batched = backend.generate(PROMPTS, max_new_tokens=8)
    # One call per prompt: no padding, no sorting, so the order restoration of the batched call is checked too.
    singles = [backend.generate([prompt], max_new_tokens=8)[0] for prompt in PROMPTS]
    assert batched == singles
    assert len(set(batched)) > 1  # different prompts, different completions: a misordered batch would show


def test_transformers_matches_plain_generate(backend):
    import torch

    tokenizer, model = backend.tokenizer, backend.model
    ids = tokenizer.apply_chat_template(PROMPTS[1], add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = torch.tensor([list(ids["input_ids"])])
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False)
    expected = tokenizer.decode(out[0, ids.size(1) :], skip_special_tokens=True)
    assert backend.generate([PROMPTS[1]], max_new_tokens=8) == [expected]


def test_transformers_sampling_is_deterministic_under_seed(backend):
    import torch

    state = torch.random.get_rng_state()
    first = backend.generate(PROMPTS[:3], max_new_tokens=8, temperature=1.0, seed=7)
    again = backend.generate(PROMPTS[:3], max_new_tokens=8, temperature=1.0, seed=7)
    other = backend.generate(PROMPTS[:3], max_new_tokens=8, temperature=1.0, seed=8)
    assert first == again
    assert first != other
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is left alone


def test_transformers_restores_training_mode_and_checks_inputs(backend):
    backend.model.train()
    try:
        backend.generate(PROMPTS[:1], max_new_tokens=2)
        assert backend.model.training
    finally:
        backend.model.eval()
    assert backend.generate([], max_new_tokens=2) == []
    with pytest.raises(TypeError, match="list of"):
        backend.generate(["plain text"], max_new_tokens=2)
    assert backend.name.startswith("transformers:")
    tokenizer = type(backend.tokenizer).from_pretrained(backend.tokenizer.name_or_path)
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        TransformersBackend(backend.model, tokenizer)


# ------------------------------------------------------------------------------------------------------- OpenAI
def echo_settings(request):
    """The loopback server's answer: the prompt and the generation settings it received."""
    body = request.body
    return f"echo:{body['messages'][-1]['content']}|max={body['max_tokens']}|t={body['temperature']}|seed={body.get('seed')}"


@pytest.fixture()
def server():
    with LoopbackOpenAI(answer=echo_settings) as running:
        yield running


def test_openai_backend_generates_in_order_with_key_from_env(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    backend = OpenAIBackend(server.base_url, "judge-model", num_workers=3)
    prompts = [chat(f"question {i}") for i in range(7)]
    outputs = backend.generate(prompts, max_new_tokens=5, temperature=0.0, seed=3)
    assert outputs == [f"echo:question {i}|max=5|t=0.0|seed=3" for i in range(7)]
    assert server.num_requests == 7
    request = server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == "judge-model"
    assert SECRET not in repr(backend) and backend.name == "openai:judge-model"


def test_openai_backend_without_key_sends_no_authorization(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # huggingface_hub's client would send the Hugging Face token to any URL without a key of its own
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    backend = OpenAIBackend(server.base_url + "/chat/completions", "m", num_workers=1, send_seed=False)
    assert backend.generate([chat("x")], seed=5) == ["echo:x|max=256|t=0.0|seed=None"]
    assert not {name.lower() for name in server.requests[0].headers} & {"authorization"}


def test_openai_http_error_is_clear_and_hides_the_key(caplog):
    def echo_key(request):  # a server that echoes the credentials it refused
        return Reply.error(401, f"invalid key: {request.headers.get('authorization')}")

    with LoopbackOpenAI(answer=echo_key) as server, caplog.at_level("DEBUG"):
        backend = OpenAIBackend(server.base_url, "unauthorized", api_key=SECRET, max_retries=0)
        with pytest.raises(BackendError) as raised:
            backend.generate([chat("x")])
    message = str(raised.value)
    assert "HTTP 401" in message and "/v1/chat/completions" in message and "API key" in message
    assert SECRET not in message and "***" in message  # the server echoed it; it is redacted
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # no chained HTTP error shown
    assert SECRET not in caplog.text


def test_openai_error_masks_echoed_fragments_of_the_key_and_names_its_variable(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)

    def echo_parts(request):  # a proxy quoting the key in part and in another case
        return Reply.error(403, f"key {SECRET[:-4]}... refused; lower {SECRET.lower()}; upper {SECRET.upper()[3:15]}")

    with LoopbackOpenAI(answer=echo_parts) as server, pytest.raises(BackendError) as raised:
        OpenAIBackend(server.base_url, "m", max_retries=0).generate([chat("x")])
    message = str(raised.value)
    assert "HTTP 403" in message and "key ***... refused; lower ***; upper ***" in message, message
    assert "Check the API key ($OPENAI_API_KEY, or the api_key argument in Python)." in message
    low = message.lower()
    assert not any(SECRET.lower()[i : i + 8] in low for i in range(len(SECRET) - 7))  # no 8 characters of it


def test_openai_url_credentials_are_used_but_never_shown_or_keyed(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LoopbackOpenAI(failures=[Reply.error(500, "boom")]) as server:
        host = server.base_url.split("://", 1)[1]
        backend = OpenAIBackend(f"http://proxyuser:Pr0xyPassw0rd@{host}", "m", max_retries=0, name="openai:m")
        with pytest.raises(BackendError) as raised:
            backend.generate([chat("x")])
        assert server.num_requests == 1  # the URL with its credentials reached the server
    public = f"http://{host}/chat/completions"
    assert backend.public_url == public and backend.cache_key_fields()["url"] == public
    assert str(raised.value).startswith(f"POST {public} failed with HTTP 500")
    named = OpenAIBackend(f"http://u:Pr0xyPassw0rd@{host}", "m", name=f"openai:http://u:Pr0xyPassw0rd@{host}@m")
    shown = [str(raised.value), repr(backend), repr(named), named.name, str(named.cache_key_fields())]
    assert not any("Pr0xyPassw0rd" in text or "proxyuser" in text for text in shown)


@pytest.mark.parametrize(
    "spec, public",
    [
        ("openai:http://user:KEY123456@host:8000/v1@judge", "openai:http://host:8000/v1@judge"),
        ("openai:https://h/v1?api_key=KEY123456&api-version=2@m", "openai:https://h/v1?api-version=2@m"),
        ("OpenAI:https://u@h/v1?token=t&sig=s#frag@m", "OpenAI:https://h/v1@m"),
        ("openai:gpt-4o", "openai:gpt-4o"),
        ("transformers:/models/llama", "transformers:/models/llama"),
        ("out/model", "out/model"),
        ("openai:http://u:KEY123456@host/v1", "openai:http://***@host/v1"),  # no model: the safety net masks it
    ],
)
def test_public_spec_keeps_no_credentials(spec, public):
    assert public_spec(spec) == public


def test_public_url_keeps_the_server_apart():
    assert public_url("https://u:p@h:1/v1?Api-Key=k&x=1#f") == "https://h:1/v1?x=1"
    assert public_url("http://a/v1") != public_url("http://b/v1")


def test_openai_retries_transient_errors(caplog):
    with LoopbackOpenAI(answer=echo_settings, failures=[Reply.error(503), Reply.error(503)]) as server:
        backend = OpenAIBackend(server.base_url, "flaky", api_key=SECRET, max_retries=2, retry_backoff=0.0)
        with caplog.at_level("WARNING"):
            assert backend.generate([chat("x")]) == ["echo:x|max=256|t=0.0|seed=0"]
        assert server.num_requests == 3
    assert "HTTP 503" in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize(
    "raw, match",
    [
        (b'{"object": "error"}', "without choices"),
        (b"<html>oops</html>", "not JSON"),
        (b"[1, 2]", "not a chat completion"),
    ],
)
def test_openai_bad_payloads(raw, match):
    with LoopbackOpenAI(failures=[Reply.malformed(raw)]) as server, pytest.raises(BackendError, match=match):
        OpenAIBackend(server.base_url, "m", max_retries=0).generate([chat("x")])


def test_openai_unreachable_server():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=0, timeout=5)
    # the loopback server lifts the Hub's offline mode, as for a reachable server
    with LoopbackOpenAI(), pytest.raises(BackendError, match="Could not reach"):
        backend.generate([chat("x")])


def test_openai_offline_mode_is_one_clear_line(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with LoopbackOpenAI(lift_hub_offline=False) as server:
        with pytest.raises(BackendError, match="HF_HUB_OFFLINE") as raised:
            OpenAIBackend(server.base_url, "m").generate([chat("x")])
        assert server.num_requests == 0
    assert "\n" not in str(raised.value)


# --------------------------------------------------------------------------------------------------------- vLLM
def test_vllm_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ImportError) as raised:
        VLLMBackend("org/model")
    assert VLLM_INSTALL_HINT in str(raised.value)
    assert 'pip install "personalign[vllm]"' in str(raised.value)
    with pytest.raises(ImportError, match=r"personalign\[vllm\]"):
        load_backend("vllm:org/model")


def test_vllm_backend_wiring_with_a_stand_in_module(monkeypatch):
    calls = {}

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, model, **kwargs):
            calls["init"] = (model, kwargs)

        def chat(self, prompts, params, use_tqdm=True, **kwargs):
            calls["chat"] = (prompts, params.kwargs, kwargs)
            return [
                types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"out{i}")]) for i in range(len(prompts))
            ]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    backend = load_backend("vllm:org/model", tensor_parallel_size=2)
    assert isinstance(backend, VLLMBackend) and backend.name == "vllm:org/model"
    assert backend.generate(PROMPTS[:2], max_new_tokens=4, seed=1) == ["out0", "out1"]
    assert calls["init"] == ("org/model", {"tensor_parallel_size": 2})
    assert calls["chat"][1] == {"max_tokens": 4, "temperature": 0.0, "top_p": 1.0, "seed": 1}


# ------------------------------------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    "spec, expected",
    [
        ("transformers:org/model", ("transformers", {"model": "org/model"})),
        ("org/model", ("transformers", {"model": "org/model"})),
        ("/tmp/some:folder", ("transformers", {"model": "/tmp/some:folder"})),
        ("vllm:/models/llama", ("vllm", {"model": "/models/llama"})),
        (
            "openai:http://localhost:8000/v1@meta-llama/Llama-3.1-8B-Instruct",
            ("openai", {"base_url": "http://localhost:8000/v1", "model": "meta-llama/Llama-3.1-8B-Instruct"}),
        ),
        ("OpenAI:https://h.example/v1@gpt@v2", ("openai", {"base_url": "https://h.example/v1@gpt", "model": "v2"})),
        ("openai:gpt-4o-mini", ("openai", {"base_url": "http://env.example/v1", "model": "gpt-4o-mini"})),
    ],
)
def test_parse_backend_spec(spec, expected, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example/v1")
    assert parse_backend_spec(spec) == expected


@pytest.mark.parametrize("spec", ["", "openai:", "openai:http://localhost:8000/v1", "vllm:"])
def test_parse_backend_spec_errors(spec):
    with pytest.raises(ValueError):
        parse_backend_spec(spec)


def test_load_backend(tiny_lm_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    backend = load_backend("openai:gpt-4o-mini", api_key=SECRET, num_workers=2)
    assert isinstance(backend, OpenAIBackend)
    assert backend.url == "https://api.openai.com/v1/chat/completions" and backend.num_workers == 2
    assert SECRET not in repr(backend) and SECRET not in repr(vars(backend).get("_client"))
    assert load_backend(backend) is backend
    local = load_backend(f"transformers:{tiny_lm_path}", batch_size=3)
    assert isinstance(local, TransformersBackend) and local.batch_size == 3
    assert isinstance(local, GenerationBackend)
    assert isinstance(load_backend(str(tiny_lm_path)), TransformersBackend)


# ------------------------------------------------------------------------------------------ local models, checked
def test_local_model_checks_come_before_any_load(tiny_lm_path, tiny_encoder_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check_local_model("transformers", str(tiny_lm_path))  # a causal LM passes
    check_local_model("openai", "no/such/thing/at/all")  # an API model is not a path
    with pytest.raises(ValueError) as raised:
        load_backend(str(tiny_encoder_path))
    assert str(raised.value) == (
        f"model {tiny_encoder_path}: a bert model (BertModel), not a causal (generative) language model; generation "
        "needs one, such as an instruction-tuned chat model's folder."
    )
    sentence_transformers = tmp_path / "st"
    sentence_transformers.mkdir()
    (sentence_transformers / "modules.json").write_text("[]")
    with pytest.raises(ValueError, match=r"^model st: a sentence-transformers model \(modules\.json\), not a causal"):
        load_backend("transformers:./st")
    inferencer = tmp_path / "inferencer"
    inferencer.mkdir()
    (inferencer / "learned_inference_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"^model inferencer: a learned preference inferencer folder \("):
        load_backend("inferencer")
    with pytest.raises(ValueError, match=r"^model ./nothere: no such file or folder\.$"):
        load_backend("vllm:./nothere")  # before vLLM is looked for
    # Folders transformers may still load are left to it: an adapter, a model type it does not know, remote code.
    for name, files in {
        "adapter": {"adapter_config.json": "{}"},
        "unknown": {"config.json": '{"model_type": "brand-new", "architectures": ["BrandNewModel"]}'},
        "remote": {"config.json": '{"model_type": "bert", "auto_map": {"AutoModelForCausalLM": "m.Causal"}}'},
        "decoder": {"config.json": '{"model_type": "bert", "architectures": ["BertLMHeadModel"]}'},
    }.items():
        (tmp_path / name).mkdir()
        for file, text in files.items():
            (tmp_path / name / file).write_text(text)
        check_local_model("transformers", name)


def test_a_name_neither_local_nor_on_the_hub_is_one_line_with_an_api_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # offline (tests/conftest.py): the Hub is never reached
    with pytest.raises(ValueError) as raised:
        load_backend("gpt-4")
    message = str(raised.value)
    assert message.startswith("model gpt-4: no such local folder, and the Hub model gpt-4 did not load (")
    assert message.endswith("; if it is an API model, write openai:gpt-4 (key from $OPENAI_API_KEY).")
    assert "\n" not in message
    with pytest.raises(ValueError) as raised:
        load_backend("assets/nothere")  # a typo'd relative path reads as a Hub id: both are said
    assert str(raised.value).startswith("model assets/nothere: no such local folder, and the Hub model")
    assert "openai:" not in str(raised.value)


def test_vllm_without_vllm_is_a_user_error_with_the_install_hint(monkeypatch):
    from personalign.cli.error_map import error_message
    from personalign.errors import InputError

    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` raises ImportError
    with pytest.raises(ImportError) as raised:
        VLLMBackend("some/model")
    assert isinstance(raised.value, InputError)
    message = error_message(raised.value)
    assert "internal error" not in message and 'pip install "personalign[vllm]"' in message


def test_openai_without_a_key_is_refused_before_loading_unless_the_server_is_another(monkeypatch):
    from personalign.errors import InputError

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(InputError, match=r"needs an API key: set \$OPENAI_API_KEY"):
        load_backend("openai:gpt-4o-mini")
    assert load_backend("openai:http://127.0.0.1:9/v1@local").name == "openai:local"  # a local server needs none
    assert load_backend("openai:gpt-4o-mini", api_key="sk-given").model == "gpt-4o-mini"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert load_backend("openai:gpt-4o-mini").model == "gpt-4o-mini"


def test_a_tokenizer_without_chat_template_is_refused_naming_the_model():
    from personalign.errors import InputError

    tokenizer = types.SimpleNamespace(chat_template=None)
    with pytest.raises(InputError, match=r"^model runs/base: the tokenizer has no chat template"):
        TransformersBackend(object(), tokenizer, name="transformers:runs/base")


def test_a_sentence_transformers_folder_of_a_type_transformers_does_not_know_is_refused(tmp_path):
    """A PersonaEncoder folder in a process that has not imported `personalign.encoder` (its `persona_encoder` type
    unregistered): modules.json beside a config.json of an unknown type is refused in one line, not left to
    transformers (which then failed inside `eval nominal` / `generate` as an internal error)."""
    folder = tmp_path / "encoder"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "an_encoder_type_nobody_registered"}))
    (folder / "modules.json").write_text("[]")
    save_file({"weight": torch.zeros(2)}, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match=r"a sentence-transformers model \(modules\.json\) of type 'an_encoder_type"):
        check_local_model("transformers", folder)
    (folder / "modules.json").unlink()  # another unknown type stays transformers' to judge (custom code may load it)
    check_local_model("transformers", folder)
