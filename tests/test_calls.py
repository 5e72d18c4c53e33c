"""Calls at API scale, offline: the real OpenAI backend (huggingface_hub's InferenceClient) against a loopback
server: concurrency and order, retries and backoff, the shared rate limit, the on-disk cache (a second run sends
nothing; a run killed with SIGKILL resumes with only the missing calls), the dry run's exact counts, and the API key
kept out of everything."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import personalign
from loopback_openai import LoopbackOpenAI, Reply
from personalign.inference.calls import (
    CachedBackend,
    CallCache,
    CallRequest,
    CallStats,
    DryRunBackend,
    api_kwargs,
    default_cache_dir,
    estimate_prompt_tokens,
    wrap_backend,
)
from personalign.inference.generation import BackendError, OpenAIBackend, RateLimiter, parse_retry_after

SECRET = "sk-loopback-SECRET-7f3a9c2e51"
MODEL = "judge-model"


def chat(text):
    return [{"role": "user", "content": text}]


def questions(n):
    return [chat(f"question {i}") for i in range(n)]


def backend_for(server, **kwargs):
    kwargs.setdefault("api_key", SECRET)
    kwargs.setdefault("retry_backoff", 0.0)
    return OpenAIBackend(server.base_url, MODEL, **kwargs)


def cache_text(folder):
    return "".join(path.read_text() for path in Path(folder).glob("*.jsonl"))


# ------------------------------------------------------------------------------------------- concurrency, retries
def test_concurrent_answers_come_back_in_input_order():
    n = 12
    # later prompts answer sooner, so completions arrive out of order
    with LoopbackOpenAI(delay=lambda request: 0.01 * (n - int(request.prompt.split()[-1]))) as server:
        arrivals = []
        outputs = backend_for(server, num_workers=4).generate(
            questions(n), on_completion=lambda index, text: arrivals.append((index, text))
        )
        requests = server.requests
    assert outputs == [f"echo:question {i}" for i in range(n)]
    assert sorted(arrivals) == list(enumerate(outputs))  # each completion reported once, with its index
    assert [index for index, _ in arrivals] != list(range(n))  # they did arrive out of order
    overlapping = sum(1 for r in requests if r.received < requests[0].answered)
    assert overlapping > 1  # requests were in flight together


def test_retries_honour_retry_after_and_recover(caplog):
    failures = {"question 0": [Reply.error(429, retry_after=0.2), Reply.error(500)]}
    with LoopbackOpenAI(failures=failures) as server, caplog.at_level("WARNING"):
        outputs = backend_for(server, max_retries=2, num_workers=1).generate(questions(2))
        first, second, third = [r for r in server.requests if r.prompt == "question 0"]
    assert outputs == ["echo:question 0", "echo:question 1"]
    assert [first.status, second.status, third.status] == [429, 500, 200]
    assert second.received - first.answered >= 0.2  # the server's Retry-After was honoured (a lower bound)
    assert "HTTP 429" in caplog.text and "HTTP 500" in caplog.text


def test_retry_after_is_capped_and_parsed():
    with LoopbackOpenAI(failures=[Reply.error(503, retry_after=3600)]) as server:
        start = time.monotonic()
        assert backend_for(server, max_retry_wait=0.05).generate([chat("x")]) == ["echo:x"]
        assert time.monotonic() - start < 30  # not the hour the server asked for
    assert parse_retry_after("2") == 2.0 and parse_retry_after("0.5") == 0.5 and parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None


def test_gives_up_after_the_last_retry_with_one_line():
    with LoopbackOpenAI(failures=[Reply(500, "upstream exploded\nbadly")] * 3) as server:
        with pytest.raises(BackendError) as raised:
            backend_for(server, max_retries=2).generate([chat("x")])
        assert server.num_requests == 3
        url = server.base_url
    message = str(raised.value)
    assert "HTTP 500" in message and url in message and "upstream exploded badly" in message
    assert "after 3 attempts" in message and "\n" not in message
    with LoopbackOpenAI(failures=[Reply.error(400, "bad request")]) as server:  # not retried
        with pytest.raises(BackendError, match="HTTP 400"):
            backend_for(server, max_retries=3).generate([chat("x")])
        assert server.num_requests == 1


def test_timeouts_are_retried():
    with LoopbackOpenAI(failures=[Reply.completion("too late", delay=1.0)]) as server:
        assert backend_for(server, timeout=0.2, max_retries=1).generate([chat("x")]) == ["echo:x"]
        assert server.num_requests == 2
    with LoopbackOpenAI(delay=1.0) as server, pytest.raises(BackendError, match=r"did not answer within 0\.2s"):
        backend_for(server, timeout=0.2, max_retries=0).generate([chat("x")])


@pytest.mark.parametrize(
    "raw, match",
    [(b"<html>oops</html>", "not JSON: '<html>oops</html>'"), (b'{"choices": []}', "without choices")],
)
def test_malformed_bodies_are_one_clear_line(raw, match):
    with LoopbackOpenAI(failures=[Reply.malformed(raw)]) as server:
        with pytest.raises(BackendError, match=match) as raised:
            backend_for(server, max_retries=3).generate([chat("x")])
        assert server.num_requests == 1  # not retried
    assert "\n" not in str(raised.value)


def test_rate_limit_spaces_requests_across_workers():
    interval = 0.05
    with LoopbackOpenAI() as server:
        start = time.monotonic()
        backend_for(server, num_workers=3, max_requests_per_minute=60 / interval).generate(questions(6))
        arrivals = sorted(r.received for r in server.requests)
    # the k-th request cannot leave before start + k intervals, whichever worker sends it (same clock: one process)
    assert all(arrival >= start + k * interval for k, arrival in enumerate(arrivals))
    limiter = RateLimiter(None)
    limiter.wait()  # no limit: returns at once
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_error_stops_the_batch_and_keeps_what_arrived(tmp_path):
    # prompt 5 fails for good; the other requests finish or are never sent; the rerun sends only the missing ones
    failures = {"question 5": [Reply.error(400, "refused")]}
    with LoopbackOpenAI(failures=failures, delay=lambda r: 0.1 if r.prompt == "question 6" else 0.0) as server:
        cached = CachedBackend(backend_for(server, num_workers=2), tmp_path)
        with pytest.raises(BackendError, match="HTTP 400"):
            cached.generate(questions(8))
        on_disk = CallCache(tmp_path).count(cached.name)
        assert 5 <= on_disk < 8 and cached.stats.called == on_disk
        server.reset()
        again = CachedBackend(backend_for(server, num_workers=2), tmp_path)
        assert again.generate(questions(8)) == [f"echo:question {i}" for i in range(8)]
        assert server.num_requests == 8 - on_disk
        assert again.stats == CallStats(requested=8, cached=on_disk, called=8 - on_disk)


# ---------------------------------------------------------------------------------------------------------- cache
def test_second_run_sends_nothing(tmp_path):
    with LoopbackOpenAI() as server:
        first = CachedBackend(backend_for(server, num_workers=3), CallCache(tmp_path))
        outputs = first.generate(questions(6), max_new_tokens=7)
        assert server.num_requests == 6 and first.stats == CallStats(6, 0, 6)
        second = CachedBackend(backend_for(server), tmp_path)  # a new process would read the files the same way
        assert second.generate(questions(6), max_new_tokens=7) == outputs
        assert server.num_requests == 6 and second.stats == CallStats(6, 6, 0)
    records = [json.loads(line) for line in cache_text(tmp_path).splitlines()]
    assert len(records) == 6 and {r["completion"] for r in records} == set(outputs)
    assert records[0]["request"]["max_new_tokens"] == 7 and records[0]["backend"] == f"openai:{MODEL}"


def test_cache_key_covers_every_setting(tmp_path):
    base = CallRequest("openai:m", chat("x"), 8, 0.0, 1.0, 0, {"url": "u"})
    variants = [
        CallRequest("openai:other", chat("x"), 8, 0.0, 1.0, 0, {"url": "u"}),
        CallRequest("openai:m", chat("y"), 8, 0.0, 1.0, 0, {"url": "u"}),
        CallRequest("openai:m", chat("x"), 9, 0.0, 1.0, 0, {"url": "u"}),
        CallRequest("openai:m", chat("x"), 8, 0.5, 1.0, 0, {"url": "u"}),
        CallRequest("openai:m", chat("x"), 8, 0.0, 0.9, 0, {"url": "u"}),
        CallRequest("openai:m", chat("x"), 8, 0.0, 1.0, 1, {"url": "u"}),
        CallRequest("openai:m", chat("x"), 8, 0.0, 1.0, 0, {"url": "u", "extra_body": {"stop": ["\n"]}}),
        CallRequest("openai:m", [{"role": "system", "content": "x"}], 8, 0.0, 1.0, 0, {"url": "u"}),
    ]
    assert len({base.key, *(v.key for v in variants)}) == len(variants) + 1
    same = CallRequest("openai:m", [{"content": "x", "role": "user"}], 8, 0.0, 1.0, 0, {"url": "u"})
    assert same.key == base.key  # canonical: the order of a message's fields does not matter

    with LoopbackOpenAI() as server:
        cached = CachedBackend(backend_for(server, extra_body={"stop": ["."]}), tmp_path)
        cached.generate([chat("a")])
        CachedBackend(backend_for(server), tmp_path).generate([chat("a")])  # another extra body: sent again
        assert server.num_requests == 2
        # sampling without a seed is never cached
        assert cached.generate([chat("a"), chat("a")], temperature=0.7, seed=None) == ["echo:a", "echo:a"]
        cached.generate([chat("a")], temperature=0.7, seed=None)
        assert server.num_requests == 5 and CallCache(tmp_path).count(cached.name) == 2  # the two greedy calls
        # repeated greedy prompts are one call; repeated seeded samples are one call each (best-of-n)
        server.reset()
        cached.generate([chat("b")] * 3)
        cached.generate([chat("c")] * 3, temperature=0.7, seed=1)
        assert server.num_requests == 1 + 3
        assert cached.stats.called == 1 + 2 + 1 + 1 + 3
        server.reset()
        cached.generate([chat("c")] * 3, temperature=0.7, seed=1)
        assert server.num_requests == 0


def test_torn_last_record_is_skipped_and_the_file_stays_usable(tmp_path):
    cache = CallCache(tmp_path)
    first = CallRequest("openai:m", chat("one"), 8, 0.0, 1.0, 0)
    second = CallRequest("openai:m", chat("two"), 8, 0.0, 1.0, 0)
    cache.put(first, "ONE")
    path = cache.path_for("openai:m")
    with open(path, "ab") as handle:  # a write cut short by a crash
        handle.write(b'{"format": 1, "key": "abc", "compl')
    reopened = CallCache(tmp_path)
    assert reopened.get(first) == "ONE" and reopened.get(second) is None and reopened.skipped_lines == 1
    reopened.put(second, "TWO")  # appended on a line of its own, not glued to the torn one
    final = CallCache(tmp_path)
    assert final.get(first) == "ONE" and final.get(second) == "TWO" and final.count("openai:m") == 2


RESUME_SCRIPT = """
import sys
from personalign.inference.calls import CachedBackend, CallCache
from personalign.inference.generation import OpenAIBackend

url, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
backend = CachedBackend(OpenAIBackend(url, "resume-model", num_workers=2, max_retries=0), CallCache(folder))
print(backend.generate([[{"role": "user", "content": f"question {i}"}] for i in range(n)]))
"""


def test_killed_run_resumes_with_only_the_missing_calls(tmp_path):
    n = 20
    script = tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(personalign.__file__).parents[1]), env.get("PYTHONPATH", "")])
    env["OPENAI_API_KEY"] = SECRET
    with LoopbackOpenAI(delay=0.04) as server:
        process = subprocess.Popen(
            [sys.executable, str(script), server.base_url, str(tmp_path / "cache"), str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while server.num_completions < n // 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
        assert server.num_requests < n  # it was killed halfway

        on_disk = CallCache(tmp_path / "cache").count("openai:resume-model")
        assert 0 < on_disk < n
        server.reset()
        backend = CachedBackend(OpenAIBackend(server.base_url, "resume-model", num_workers=2), tmp_path / "cache")
        assert backend.generate(questions(n)) == [f"echo:question {i}" for i in range(n)]
        assert server.num_requests == n - on_disk
        assert sorted(r.prompt for r in server.requests) != [f"question {i}" for i in range(n)]
    assert SECRET not in cache_text(tmp_path / "cache") + stdout.decode() + stderr.decode()


# -------------------------------------------------------------------------------------------------------- dry run
def test_dry_run_counts_exactly_and_sends_nothing(tmp_path):
    prompts = [*questions(4), chat("question 1"), chat("abcdefgh")]  # one repeat
    with LoopbackOpenAI() as server:
        spec = f"openai:{server.base_url}@{MODEL}"
        bare = wrap_backend(spec, no_cache=True, api_key=SECRET)
        assert isinstance(bare, OpenAIBackend)
        CachedBackend(bare, tmp_path).generate(questions(2))
        server.reset()

        dry = wrap_backend(spec, cache_dir=tmp_path, dry_run=True, api_key=SECRET)
        assert isinstance(dry, DryRunBackend)
        assert dry.generate(prompts) == [""] * 6
        dry.generate([chat("question 3"), chat("new")])  # a later call repeating one of the first
        plan = dry.plan()
        assert server.num_requests == 0
        # cached: questions 0 and 1 (on disk), the repeat of question 1, and question 3 asked again
        assert (plan.calls, plan.cached, plan.to_call) == (8, 4, 4)
        expected_tokens = sum(estimate_prompt_tokens(p) for p in [chat("question 2"), chat("question 3")])
        assert plan.prompt_tokens == expected_tokens + 2 + 1  # "abcdefgh" is 2, "new" is 1
        assert estimate_prompt_tokens(chat("abcdefgh")) == 2 and estimate_prompt_tokens(chat("abcdefghi")) == 3
        assert plan.max_completion_tokens == 4 * 256
        line = plan.describe()
        assert "8 calls" in line and "3 answered from the cache" in line and "4 to send" in line
        assert "1 repeat a prompt asked earlier in this run" in line  # question 3, not in the cache before the run
        assert "estimated as characters / 4" in line and SECRET not in line + repr(dry)

        real = wrap_backend(spec, cache_dir=tmp_path, api_key=SECRET)
        real.generate(prompts)
        real.generate([chat("question 3"), chat("new")])
        assert server.num_requests == plan.to_call
        assert real.stats == CallStats(plan.calls, plan.cached, plan.to_call)

        uncached = wrap_backend(spec, no_cache=True, dry_run=True)
        uncached.generate(prompts)
        assert (uncached.plan().to_call, uncached.plan().cached) == (6, 0) and "no cache" in uncached.plan().describe()


def test_transformers_backend_reports_per_batch_and_dry_run_counts_with_its_tokenizer(tiny_lm_path, tmp_path):
    from transformers import AutoTokenizer

    from personalign.inference.generation import TransformersBackend

    prompts = [chat("hello"), chat("a much longer question about the weather"), chat("hi"), chat("ok then")]
    # --num-workers, the rate limit, retries and timeout are the API's: a command passes them whatever the backend
    api = api_kwargs(max_requests_per_minute=60, max_retries=1, request_timeout=5.0)
    backend = wrap_backend(
        f"transformers:{tiny_lm_path}", no_cache=True, batch_size=2, device="cpu", num_workers=3, **api
    )
    assert isinstance(backend, TransformersBackend)
    batches = []
    original = backend.model.generate
    backend.model.generate = lambda **kwargs: batches.append(len(batches)) or original(**kwargs)
    reported = []
    outputs = backend.generate(
        prompts, max_new_tokens=2, on_completion=lambda i, t: reported.append((i, len(batches)))
    )
    assert sorted(i for i, _ in reported) == [0, 1, 2, 3]
    assert [b for _, b in reported] == [1, 1, 2, 2]  # two reported after the first batch, before the second ran
    cached = CachedBackend(backend, tmp_path)
    assert cached.generate(prompts[:2], max_new_tokens=2) == outputs[:2]

    dry = wrap_backend(f"transformers:{tiny_lm_path}", cache_dir=tmp_path, dry_run=True, batch_size=2, num_workers=3)
    assert dry.name == backend.name and dry.cache_key_fields() == backend.cache_key_fields()
    dry.generate(prompts, max_new_tokens=2)
    plan = dry.plan()
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    exact = [
        len(tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
        for p in prompts[2:]
    ]
    assert (plan.calls, plan.cached, plan.to_call) == (4, 2, 2) and plan.prompt_tokens == sum(exact)
    assert "tokenizer and chat template" in plan.describe()


# ------------------------------------------------------------------------------------------------ keys, defaults
def test_the_key_appears_nowhere(tmp_path, caplog):
    def echo_key(request):  # every refusal quotes the credentials it got
        return Reply.error(429, f"slow down, {request.headers.get('authorization')}", retry_after=0)

    with caplog.at_level("DEBUG"):
        with LoopbackOpenAI(answer=echo_key) as server:
            backend = CachedBackend(backend_for(server, max_retries=1), tmp_path)
            with pytest.raises(BackendError) as raised:
                backend.generate([chat("x")])
            assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"  # it was sent
        with LoopbackOpenAI() as server:
            backend = CachedBackend(backend_for(server, num_workers=2), tmp_path)
            outputs = backend.generate(questions(3))
            dry = wrap_backend(backend.backend, cache_dir=tmp_path, dry_run=True)
            dry.generate(questions(4))
    shown = [str(raised.value), caplog.text, repr(backend), repr(backend.backend), str(outputs), cache_text(tmp_path)]
    shown += [dry.plan().describe(), repr(dry.plan()), json.dumps(backend.cache_key_fields())]
    assert "slow down, Bearer ***" in str(raised.value) and "slow down, Bearer ***" in caplog.text
    assert not any(SECRET in text for text in shown)


def test_url_credentials_appear_nowhere_in_the_cache(tmp_path):
    with LoopbackOpenAI() as server:
        host = server.base_url.split("://", 1)[1]
        spec = f"openai:http://proxyuser:Pr0xyPassw0rd@{host}@{MODEL}"
        backend = wrap_backend(spec, cache_dir=tmp_path, num_workers=2)
        assert backend.generate(questions(3)) == [f"echo:question {i}" for i in range(3)]
        dry = wrap_backend(spec, cache_dir=tmp_path, dry_run=True)
        dry.generate(questions(4))
    plan = dry.plan()
    assert (plan.calls, plan.cached) == (4, 3)  # the public URL keys the calls: the dry run finds them
    records = [json.loads(line) for line in cache_text(tmp_path).splitlines()]
    assert {record["request"]["fields"]["url"] for record in records} == {f"http://{host}/chat/completions"}
    shown = [cache_text(tmp_path), *(path.name for path in tmp_path.iterdir()), backend.name, plan.describe()]
    assert not any("Pr0xyPassw0rd" in text or "proxyuser" in text for text in shown)


def test_api_options_reach_the_api_backend(tmp_path):
    assert api_kwargs() == {}
    options = api_kwargs(max_requests_per_minute=30.0, max_retries=0, request_timeout=5.0)
    assert options == {"max_requests_per_minute": 30.0, "max_retries": 0, "timeout": 5.0}
    backend = wrap_backend("openai:http://127.0.0.1:9/v1@m", no_cache=True, num_workers=2, **options)
    assert (backend.max_retries, backend.timeout, backend.rate_limiter.max_requests_per_minute) == (0, 5.0, 30.0)
    for bad in ({"request_timeout": float("nan")}, {"request_timeout": float("inf")}, {"max_requests_per_minute": 0}):
        with pytest.raises(ValueError, match=r"timeout|max_requests_per_minute"):
            wrap_backend("openai:http://127.0.0.1:9/v1@m", no_cache=True, **api_kwargs(**bad))


def test_default_cache_dir_and_wrap_backend(monkeypatch, tmp_path):
    monkeypatch.setenv("PERSONALIGN_CACHE", str(tmp_path / "calls"))
    assert default_cache_dir() == tmp_path / "calls"
    monkeypatch.delenv("PERSONALIGN_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "personalign" / "calls"

    wrapped = wrap_backend("openai:http://127.0.0.1:9/v1@m", cache_dir=tmp_path, num_workers=3)
    assert isinstance(wrapped, CachedBackend) and wrapped.backend.num_workers == 3
    assert wrapped.cache.folder == tmp_path and wrapped.remote and wrapped.name == "openai:m"
    assert wrap_backend(wrapped, cache_dir=tmp_path) is wrapped
    assert wrap_backend(wrapped, no_cache=True) is wrapped.backend
    # a dry run loads nothing (a Hub id is not fetched), but refuses a local path the real run would refuse
    dry = wrap_backend("transformers:owner/some-model", dry_run=True, cache_dir=tmp_path)
    assert dry.name == "transformers:owner/some-model" and dry.tokenizer is None
    assert dry.cache_key_fields() == {"weights": None}
    with pytest.raises(ValueError, match=r"^model /no/such/model: no such file or folder\.$"):
        wrap_backend("transformers:/no/such/model", dry_run=True, cache_dir=tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="not a folder"):
        CallCache(tmp_path / "file")


def test_progress_bar_counts_cached_calls(tmp_path, capsys):
    with LoopbackOpenAI() as server:
        cached = CachedBackend(backend_for(server), tmp_path)
        cached.generate(questions(2), show_progress=False)
        capsys.readouterr()
        cached.generate(questions(5), show_progress=True)
    bar = capsys.readouterr().err
    assert "5/5" in bar and "cached=2" in bar and bar.count("openai:judge-model") >= 1
    assert math.isclose(cached.stats.cached, 2)


def test_a_stand_in_reply_counts_as_its_max_new_tokens_for_any_tokenizer(tiny_lm_path):
    from transformers import AutoTokenizer

    from personalign.inference.calls import placeholder_reply

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_path)
    stand_in = {"role": "assistant", "content": placeholder_reply(5000, tag="#7")}
    with_stand_in = [*chat("Hello there."), stand_in, *chat("And now?")]
    without = [*chat("Hello there."), {"role": "assistant", "content": ""}, *chat("And now?")]
    for tokenized in (tokenizer, None):
        plans = []
        for prompt in (with_stand_in, without):
            dry = DryRunBackend("transformers:x", tokenizer=tokenized)
            dry.generate([prompt], max_new_tokens=2)
            plans.append(dry.plan().prompt_tokens)
        assert plans[0] == plans[1] + 5000  # exactly 5000 for the stand-in, whoever counts the rest


def test_an_interrupt_says_the_answered_calls_are_cached_and_the_command_resumes(tmp_path, capsys):
    from personalign.cli import error_map

    before = error_map.caches_in_use()
    backend = CachedBackend(DryRunBackend("scripted:x"), tmp_path / "cache")
    backend.generate([chat("one"), chat("two")], max_new_tokens=2)
    assert error_map.report_interrupt(before) == 130
    assert error_map.report_terminated(before) == 143
    said = " ".join(capsys.readouterr().err.split())
    assert "error: interrupted; the calls answered so far (2 in this run) are in the call cache" in said
    assert error_map.resume_hint(error_map.caches_in_use()) == ""  # a later command that used no cache
    assert str(tmp_path / "cache") in said and "run the same command again to resume" in said
    assert "terminated (SIGTERM); the calls answered so far" in said


def test_a_local_model_is_cached_under_its_resolved_path_however_spelled(tiny_lm_path, tmp_path, monkeypatch):
    from personalign.inference.calls import dry_run_backend

    monkeypatch.chdir(tiny_lm_path.parent)
    relative, absolute = tiny_lm_path.name, str(tiny_lm_path.resolve())
    assert dry_run_backend(relative).name == dry_run_backend(absolute).name == f"transformers:{absolute}"
    first = wrap_backend(relative, cache_dir=tmp_path)
    first.generate([chat("Hi")], max_new_tokens=2)
    again = wrap_backend(f"transformers:{absolute}", cache_dir=tmp_path)
    assert again.name == first.name
    again.generate([chat("Hi")], max_new_tokens=2)
    assert again.stats.as_dict() == {"requested": 1, "cached": 1, "called": 0}
