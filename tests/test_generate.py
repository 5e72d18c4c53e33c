"""`personalign generate` with the tiny transformers model: AlignX release rows, an AlignX benchmark JSON list and
counterfactual MultiFacet rows under their training prompts and without history; the responses folder (contract C2)
and `read_responses`' errors; one-line errors for bad inputs."""

import json
import sys

import pytest
from typer.testing import CliRunner

from personalign import PreferenceSpace
from personalign.cli import app, run
from personalign.data.multifacet import MultifacetBuildConfig, build_multifacet_cf, multifacet_card
from personalign.data.synthetic import multifaceted_dataset
from personalign.evaluation.generate import (
    SYSTEM_PROMPTS,
    GenerationEvalConfig,
    backend_description,
    generate_responses,
    rendered_query,
)
from personalign.evaluation.responses import ResponseRecord, read_responses, write_responses
from personalign.evaluation.rows import load_eval_rows, normalize_alignx_rows, row_renderer
from personalign.hub.cards import render_dataset_card
from personalign.hub.datasets import write_dataset_folder
from personalign.inference.generation import GenerationBackend, TransformersBackend
from personalign.personas.persona import PairItem, Persona
from personalign.personas.prompts import ica_messages, pba_messages, render_feedback_history, render_history

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
GENERATION = ["--max-new-tokens", "8", "--batch-size", "4"]
C2_META_KEYS = {
    "model",
    "backend",
    "dataset",
    "split",
    "data_format",
    "persona_format",
    "no_history",
    "preferences",
    "generation",
    "num_rows",
    "personalign_version",
    "calls",
}
C2_RECORD_KEYS = {"id", "row", "prompt", "messages", "response", "persona", "reference", "rubric", "reference_answer"}


@pytest.fixture(autouse=True)
def call_cache(tmp_path, monkeypatch):
    """Every test's call cache in a folder of its own (`$PERSONALIGN_CACHE`): nothing lands in the user's cache, and
    no test answers from another's calls."""
    folder = tmp_path / "call-cache"
    monkeypatch.setenv("PERSONALIGN_CACHE", str(folder))
    return folder


# ---------------------------------------------------------------------------------------------------------- rows
def vector(space, positive, negative):
    """A 90-entry direction: 1 at `positive`, 0 at `negative`, 0.5 elsewhere."""
    return [1.0 if i in positive else 0.0 if i in negative else 0.5 for i in range(len(space.dimensions))]


def release_rows(space):
    """Four rows in AlignX's released schema (column names with spaces): comments and pairs with vectors, a
    demographic description, the gold direction."""
    rows = []
    for index in range(4):
        rows.append(
            {
                "prompt": f"Post {index}: what should I cook tonight?",
                "chosen": f"Chosen answer {index}.",
                "rejected": f"Rejected answer {index}.",
                "Preference Direction": vector(space, {index}, {index + 10}),
                "Demographic Information": f"Person {index} lives by the sea.",
                "User-Generated Content": [
                    {
                        "prompt": f"UGC post {index}-{k}",
                        "comment": f"UGC comment {index}-{k}",
                        "Preference Direction": vector(space, {index + k}, set()),
                    }
                    for k in range(2)
                ],
                "Pair-wise Comparative Feedback": [
                    {
                        "prompt": f"Pair post {index}-{k}",
                        "chosen": f"Pair chosen {index}-{k}",
                        "rejected": f"Pair rejected {index}-{k}",
                        "Preference Direction": vector(space, {index}, {20 + k}),
                    }
                    for k in range(2)
                ],
            }
        )
    return rows


def benchmark_rows():
    """Five rows in AlignX's benchmark schema (P-Soups, UF-P-4, PRISM): a JSON list with a ready `profile`, a
    `ground_truth_persona` and feedback pairs without vectors; two rows carry a Multifaceted-Bench rubric and
    reference answer."""
    rubric = [{"criteria": "Is it brief?", "score_descriptions": {str(s): f"level {s}" for s in range(1, 6)}}]
    rows = []
    for index in range(5):
        persona = index % 2
        rows.append(
            {
                "prompt": f"What should I know about topic {index}?",
                "chosen": f"Short note {index}.",
                "rejected": f"A long story about topic {index}.",
                "ground_truth_persona": ["a brief person", "a chatty person"][persona],
                "profile": ["Concise, Formal", "Verbose, Casual"][persona],
                "Pair-wise Comparative Feedback": [
                    {
                        "prompt": f"History {index}-{k}",
                        "chosen": f"Liked {index}-{k}",
                        "rejected": f"Disliked {index}-{k}",
                    }
                    for k in range(3)
                ],
                "rubric": rubric if index < 2 else None,
                "reference_answer": f"Reference {index}." if index < 2 else None,
            }
        )
    return rows


@pytest.fixture(scope="module")
def release_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "alignx.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in release_rows(PreferenceSpace.alignx())))
    return path


@pytest.fixture(scope="module")
def benchmark_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "p_soups.json"
    path.write_text(json.dumps(benchmark_rows(), indent=1))
    return path


@pytest.fixture(scope="module")
def multifacet_folder(tmp_path_factory):
    """A counterfactual MultiFacet build folder (as `personalign build-dataset multifacet-cf` writes it)."""
    folder = tmp_path_factory.mktemp("multifacet")
    multifaceted_dataset(6, seed=0).to_parquet(str(folder / "source.parquet"))
    config = MultifacetBuildConfig(test_instructions=2, history_size=2, seed=0)
    configs, report = build_multifacet_cf(str(folder / "source.parquet"), config)
    write_dataset_folder(configs, folder / "built", render_dataset_card(configs, multifacet_card("s", config, report)))
    return folder / "built"


@pytest.fixture(scope="module")
def backend(tiny_lm_path):
    return TransformersBackend.from_pretrained(tiny_lm_path, batch_size=4, device="cpu")


def generate(*args):
    result = runner.invoke(app, ["generate", *map(str, args)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def run_in_process(monkeypatch, capsys, *args):
    """The console entry point's error handling (`run`), in this process: `(exit code, the "error:" lines)` (other
    stderr lines are progress bars); a traceback fails the test."""
    monkeypatch.setattr(sys, "argv", ["personalign", "generate", *map(str, args)])
    monkeypatch.delenv("PERSONALIGN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run(app)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, [line for line in err.splitlines() if line.startswith("error:")]


def check_folder(output, loaded, expected_prompts, backend):
    """The folder holds one record per row in order, ids `EvalRows.row_id`, prompts as expected, and the responses
    the tiny model gives those prompts greedily."""
    records, meta = read_responses(output)
    lines = (output / "responses.jsonl").read_text().splitlines()
    assert all(set(json.loads(line)) == C2_RECORD_KEYS for line in lines)
    assert set(meta) >= C2_META_KEYS and meta["num_rows"] == len(records) == len(expected_prompts)
    assert [r.row for r in records] == list(range(len(records)))
    assert [r.id for r in records] == [loaded.row_id(i) for i in range(len(records))]
    assert len({r.id for r in records}) == len(records)
    assert [r.messages for r in records] == expected_prompts
    direct = backend.generate(expected_prompts, max_new_tokens=8, temperature=0.0)
    assert [r.response for r in records] == direct and any(direct)
    return records, meta


# ---------------------------------------------------------------------------------------------------- end to end
def test_release_rows_pba_and_ica_match_the_training_renderer(tiny_lm_path, release_file, backend, tmp_path):
    loaded = load_eval_rows(str(release_file))
    raw = normalize_alignx_rows(loaded.data, loaded.where)
    for persona_format in ("pba", "ica"):
        output = tmp_path / persona_format
        generate(
            "--model",
            tiny_lm_path,
            "--dataset",
            release_file,
            "--persona-format",
            persona_format,
            "--output",
            output,
            *GENERATION,
        )
        render = row_renderer("alignx", persona_format)
        expected = [render(row, i)["prompt"] for i, row in enumerate(raw)]
        records, meta = check_folder(output, loaded, expected, backend)
        assert [r.id for r in records] == [f"alignx.jsonl:{i}" for i in range(4)]
        assert meta["model"] == str(tiny_lm_path) and meta["backend"] == "transformers"
        assert meta["persona_format"] == persona_format and meta["data_format"] == "alignx"
        assert meta["split"] == "train" and meta["no_history"] is False and meta["preferences"] is None
        assert meta["generation"] == {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "seed": 0}
        assert meta["calls"] == {"requested": 4, "cached": 0, "called": 4}
    space = PreferenceSpace.alignx()
    for record, row in zip(records, release_rows(space), strict=True):
        persona = Persona.from_alignx_row(row)
        assert record.prompt == row["prompt"]
        assert record.reference == {"chosen": row["chosen"], "rejected": row["rejected"]}
        assert record.persona == {"history": render_history(persona), "profile": persona.profile_text(space)}
        assert row["Demographic Information"] in record.persona["history"]
        assert record.rubric is None and record.reference_answer is None


def test_benchmark_json_list_ica_with_persona_rubric_and_reference_answer(
    tiny_lm_path, benchmark_file, backend, tmp_path
):
    output = tmp_path / "out"
    args = ["--model", tiny_lm_path, "--dataset", benchmark_file, "--persona-format", "ica", "--limit", 4]
    generate(*args, "--output", output, *GENERATION)
    loaded = load_eval_rows(str(benchmark_file))
    raw = normalize_alignx_rows(loaded.data, loaded.where)[:4]
    render = row_renderer("alignx", "ica")
    records, meta = check_folder(output, loaded, [render(row, i)["prompt"] for i, row in enumerate(raw)], backend)
    assert [r.id for r in records] == [f"p_soups.json:{i}" for i in range(4)] and meta["limit"] == 4
    for record, row in zip(records, benchmark_rows(), strict=False):
        pairs = row["Pair-wise Comparative Feedback"]
        assert record.persona == {
            "history": render_history(Persona.from_alignx_row(row)),
            "profile": row["profile"],
            "ground_truth_persona": row["ground_truth_persona"],
        }
        assert all(pair["chosen"] in record.messages[-1]["content"] for pair in pairs)
        assert record.rubric == row["rubric"] and record.reference_answer == row["reference_answer"]


def test_multifacet_feedback_prompts_and_persona(tiny_lm_path, multifacet_folder, backend, tmp_path):
    output = tmp_path / "out"
    generate("--model", tiny_lm_path, "--dataset", multifacet_folder, "--output", output, *GENERATION)
    loaded = load_eval_rows(str(multifacet_folder))
    rows = loaded.data.to_list()
    render = row_renderer("multifacet", "feedback")
    records, meta = check_folder(output, loaded, [render(row, i)["prompt"] for i, row in enumerate(rows)], backend)
    assert meta["data_format"] == "multifacet" and meta["persona_format"] == "feedback" and meta["split"] == "test"
    assert [r.id for r in records] == [f"test:{i}" for i in range(len(rows))] and len(rows) > 1
    for record, row in zip(records, rows, strict=True):
        history = render_feedback_history([PairItem(**item) for item in row["history_text"]])
        assert record.persona == {"dimension": row["dimension"], "preference": row["preference"], "history": history}
        assert record.prompt == row["prompt"] and record.reference["chosen"] == row["chosen"]
        assert record.rubric is None and record.reference_answer is None  # the build's rubric column is null


def test_no_history_prompts_hold_the_query_alone(tiny_lm_path, release_file, multifacet_folder, backend, tmp_path):
    for dataset, persona_format in ((release_file, "pba"), (release_file, "ica"), (multifacet_folder, "feedback")):
        output = tmp_path / persona_format
        generate(
            "--model",
            tiny_lm_path,
            "--dataset",
            dataset,
            "--persona-format",
            persona_format,
            "--no-history",
            "--output",
            output,
            *GENERATION,
        )
        records, meta = read_responses(output)
        assert meta["no_history"] is True and meta["persona_format"] == persona_format
        loaded = load_eval_rows(str(dataset))
        rows = loaded.data.to_list()
        # The system message is the persona prompt's own (none for the feedback prompt).
        data_format = "multifacet" if persona_format == "feedback" else "alignx"
        first = normalize_alignx_rows(loaded.data, loaded.where)[0] if data_format == "alignx" else rows[0]
        with_persona = row_renderer(data_format, persona_format)(first, 0)["prompt"]
        system = [m for m in with_persona if m["role"] == "system"]
        assert [m["content"] for m in system] == ([SYSTEM_PROMPTS[persona_format]] if system else [])
        expected = [[*system, {"role": "user", "content": row["prompt"]}] for row in rows]
        check_folder(output, loaded, expected, backend)
        for record in records:
            shown = "\n".join(m["content"] for m in record.messages)
            assert record.persona["history"] and record.persona["history"] not in shown
            for line in record.persona["history"].splitlines():
                if len(line) > 12:  # headings such as "*Post:*" are not history text
                    assert line not in shown, line


def test_same_greedy_run_twice_is_identical_and_dry_run_writes_nothing(tiny_lm_path, benchmark_file, tmp_path, capsys):
    config = GenerationEvalConfig(max_new_tokens=8, progress=False, no_cache=True)  # both runs generate
    first = generate_responses(str(tiny_lm_path), str(benchmark_file), config)
    second = generate_responses(str(tiny_lm_path), str(benchmark_file), config)
    assert [r.to_dict() for r in first.records] == [r.to_dict() for r in second.records]
    assert first.meta == second.meta and any(r.response for r in first.records)

    output = tmp_path / "dry"
    result = generate("--model", tiny_lm_path, "--dataset", benchmark_file, "--output", output, "--dry-run")
    assert not output.exists()
    assert "5 calls" in result.output and "5 to send" in result.output and "prompt tokens" in result.output
    # A real run through the cache, then the dry run finds every call cached; a rerun sends nothing.
    generate("--model", tiny_lm_path, "--dataset", benchmark_file, "--output", output, "--max-new-tokens", 8)
    result = generate(
        "--model",
        tiny_lm_path,
        "--dataset",
        benchmark_file,
        "--output",
        output,
        "--dry-run",
        "--max-new-tokens",
        8,
        "--overwrite",
    )
    assert "5 answered from the cache" in result.output and "0 to send" in result.output
    generate(
        "--model", tiny_lm_path, "--dataset", benchmark_file, "--output", output, "--max-new-tokens", 8, "--overwrite"
    )
    records, meta = read_responses(output)
    assert meta["calls"] == {"requested": 5, "cached": 5, "called": 0}
    assert [r.response for r in records] == [r.response for r in first.records]
    dry = generate_responses(str(tiny_lm_path), str(benchmark_file), GenerationEvalConfig(dry_run=True))
    assert [r.messages for r in dry.records] == [r.messages for r in first.records]
    assert all(r.response == "" for r in dry.records)
    with pytest.raises(ValueError, match="a dry run generated nothing"):
        dry.write(tmp_path / "never")


def test_profiles_replace_the_pba_profile_in_the_prompt_only(tiny_lm_path, benchmark_file):
    inferred = [f"Inferred profile {i}" for i in range(5)]
    config = GenerationEvalConfig(max_new_tokens=2, progress=False, limit=3)
    result = generate_responses(str(tiny_lm_path), str(benchmark_file), config, profiles=inferred, preferences="p/")
    for record, row, profile in zip(result.records, benchmark_rows(), inferred, strict=False):
        assert record.messages[-1]["content"].endswith(f"***User Preferences***\n\n{profile}")
        assert record.persona["profile"] == row["profile"]  # what the judge grades against stays the gold one
    assert result.meta["preferences"] == "p/" and len(result.records) == 3
    calls = []
    generate_responses(
        str(tiny_lm_path), str(benchmark_file), config, profiles=lambda rows: calls.append(rows) or inferred
    )
    assert calls and calls[0].row_id(0) == "p_soups.json:0"
    with pytest.raises(ValueError, match="2 profiles for 5 rows; expected one per row"):
        generate_responses(str(tiny_lm_path), str(benchmark_file), config, profiles=inferred[:2])
    ica = GenerationEvalConfig(persona_format="ica", progress=False)
    with pytest.raises(ValueError, match="use them with --persona-format pba"):
        generate_responses(str(tiny_lm_path), str(benchmark_file), ica, profiles=inferred)


class Echo(GenerationBackend):
    """Answers each prompt with the post of its user turn, recording the size of every `generate` call."""

    name, batch_size = "echo", 1

    def __init__(self):
        self.calls = []

    def _generate(self, prompts, max_new_tokens, temperature, top_p, seed):
        self.calls.append(len(prompts))
        return [rendered_query(messages) for messages in prompts]


def test_rows_go_in_chunks_and_come_back_in_order(tmp_path):
    rows = [dict(row, prompt=f"Question {i}?") for i in range(20) for row in benchmark_rows()[:1]]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(rows))
    backend = Echo()
    result = generate_responses(backend, str(path), GenerationEvalConfig(progress=False))
    assert backend.calls == [20]  # one call; the bar moves with each completion
    assert [r.response for r in result.records] == [f"Question {i}?" for i in range(20)]
    assert result.meta["model"] == "echo" and result.meta["backend"] == "Echo"
    assert result.meta["calls"] == {"requested": 20, "cached": 0, "called": 20}
    again = generate_responses(backend, str(path), GenerationEvalConfig(progress=False))
    assert backend.calls == [20] and again.meta["calls"] == {"requested": 20, "cached": 20, "called": 0}
    assert [r.response for r in again.records] == [r.response for r in result.records]


def test_rendered_query_reads_the_post_back():
    post = "A post with ***User Preferences*** in its text?"
    assert rendered_query(pba_messages(post, "Concise")) == post
    assert rendered_query(ica_messages("Plain post", Persona(demographics="Lives by the sea."))) == "Plain post"
    assert rendered_query([{"role": "user", "content": "Other layout"}]) == "Other layout"


def test_backend_description_keeps_no_credentials(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert backend_description("out/model") == {"model": "out/model", "backend": "transformers"}
    assert backend_description("vllm:org/model") == {"model": "org/model", "backend": "vllm"}
    spec = "openai:https://user:secret@host:8000/v1?api-key=SECRET@served-model"
    described = backend_description(spec)
    assert described == {"model": "served-model", "backend": "openai", "base_url": "https://host:8000/v1"}
    assert backend_description("openai:gpt-4o")["base_url"] == "https://api.openai.com/v1"


# -------------------------------------------------------------------------------------------------------- errors
def test_existing_output_is_refused_without_overwrite(tiny_lm_path, benchmark_file, tmp_path, monkeypatch, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    args = ["--model", tiny_lm_path, "--dataset", benchmark_file, "--output", output, *GENERATION]
    code, lines = run_in_process(monkeypatch, capsys, *args)
    assert code == 1 and len(lines) == 1 and "already exists" in lines[0] and "--overwrite" in lines[0]
    assert (output / "keep.txt").read_text() == "mine"
    code, _ = run_in_process(monkeypatch, capsys, *args, "--overwrite")
    assert code == 0 and sorted(p.name for p in output.iterdir()) == ["generation.json", "responses.jsonl"]


@pytest.fixture(scope="module")
def rendered_folder(benchmark_file, tmp_path_factory):
    """A `personalign build-dataset alignx` folder holding only the ready-rendered pba config."""
    folder = tmp_path_factory.mktemp("built") / "pba"
    args = ["build-dataset", "alignx", "--source", benchmark_file, "--output", folder, "--config", "pba"]
    result = runner.invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    return folder


def test_rendered_build_config_is_sent_as_it_is(tiny_lm_path, rendered_folder, benchmark_file):
    config = GenerationEvalConfig(max_new_tokens=2, progress=False)
    rendered = generate_responses(str(tiny_lm_path), str(rendered_folder), config)
    source = generate_responses(str(tiny_lm_path), str(benchmark_file), config)
    assert rendered.meta["persona_format"] == "pba"
    # A PBA profile prompt does not depend on the history the build sampled: the same prompts as the source rows.
    assert [r.messages for r in rendered.records] == [r.messages for r in source.records]
    assert [r.prompt for r in rendered.records] == [row["prompt"] for row in benchmark_rows()]
    assert [r.reference for r in rendered.records] == [r.reference for r in source.records]
    assert [r.persona["profile"] for r in rendered.records] == [row["profile"] for row in benchmark_rows()]


def bad_release_file(tmp_path):
    rows = release_rows(PreferenceSpace.alignx())[:3]
    rows[1]["chosen"] = 7
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("bad_row", "bad.jsonl, line 2, column 'chosen': expected text"),
        ("format", "persona format 'feedback' is for other rows; alignx rows take pba, ica"),
        ("not_a_model", "no config.json"),
        ("rendered_no_history", "--no-history cannot apply, its persona cannot be taken out"),
        ("temperature", "temperature must be >= 0"),
        (
            "bad_rubric",
            "p_soups.json, row 1 (0-based), column 'rubric' item 0: Rubric item 'Brief?' has no description for score",
        ),
        ("bad_history", "rows.jsonl, line 2, column 'history_text' item 1: expected an object with text 'prompt'"),
        ("encoder", "a bert model (BertModel), not a causal (generative) language model"),
        ("inferencer", "inferencer: a learned preference inferencer folder (learned_inference_config.json)"),
        ("typo", "model models/nothere: no such local folder, and the Hub model models/nothere did not load"),
        ("api_name", "model gpt-4o: no such local folder, and the Hub model gpt-4o did not load"),
        ("multifacet_preferences", "inferred preferences (--preferences) apply to AlignX rows only"),
    ],
)
def test_bad_inputs_are_one_line(
    case,
    message,
    tiny_lm_path,
    tiny_encoder_path,
    benchmark_file,
    rendered_folder,
    multifacet_folder,
    tmp_path,
    monkeypatch,
    capsys,
):
    monkeypatch.chdir(tmp_path)
    model, dataset, extra = tiny_lm_path, benchmark_file, []
    if case == "bad_row":
        dataset = bad_release_file(tmp_path)
    elif case == "format":
        extra = ["--persona-format", "feedback"]
    elif case == "not_a_model":
        model = tmp_path / "empty"
        model.mkdir()
    elif case == "rendered_no_history":
        dataset, extra = rendered_folder, ["--no-history"]
    elif case == "bad_rubric":
        rows = benchmark_rows()
        rows[1]["rubric"] = [{"criteria": "Brief?", "score_descriptions": {"2": "so-so"}}]
        dataset = tmp_path / "p_soups.json"
        dataset.write_text(json.dumps(rows))
    elif case == "bad_history":
        rows = load_eval_rows(str(multifacet_folder)).data.to_list()
        del rows[1]["history_text"][1]["rejected"]
        dataset = tmp_path / "rows.jsonl"
        dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    elif case == "encoder":
        model = tiny_encoder_path
    elif case == "inferencer":
        model = tmp_path / "inferencer"
        model.mkdir()
        (model / "learned_inference_config.json").write_text("{}")
    elif case in ("typo", "api_name"):
        model = "models/nothere" if case == "typo" else "gpt-4o"
    elif case == "multifacet_preferences":
        dataset, extra = multifacet_folder, ["--preferences", tmp_path]
    else:
        extra = ["--temperature", "-1"]
    output = tmp_path / "out"
    code, lines = run_in_process(
        monkeypatch, capsys, "--model", model, "--dataset", dataset, "--output", output, *extra
    )
    assert code == 1 and len(lines) == 1 and message in lines[0], lines
    assert not output.exists()
    if case == "api_name":
        assert lines[0].endswith("; if it is an API model, write openai:gpt-4o (key from $OPENAI_API_KEY).")


def test_the_output_is_never_the_dataset_or_a_folder_holding_it(
    tiny_lm_path, benchmark_file, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "throw"
    folder.mkdir()
    dataset = folder / benchmark_file.name
    dataset.write_bytes(benchmark_file.read_bytes())
    for given, output in [(folder, folder), (dataset, folder), (dataset, tmp_path), (folder, "./throw")]:
        args = ["--model", tiny_lm_path, "--dataset", given, "--output", output, "--overwrite", *GENERATION]
        code, lines = run_in_process(monkeypatch, capsys, *args)
        assert code == 1 and len(lines) == 1 and "the input" in lines[0] and "choose another output" in lines[0]
    assert dataset.read_bytes() == benchmark_file.read_bytes() and sorted(folder.iterdir()) == [dataset]


def test_api_options_reach_the_server(benchmark_file, tmp_path, monkeypatch, capsys):
    from loopback_openai import LoopbackOpenAI, Reply

    with LoopbackOpenAI(failures=[Reply.error(503, "busy")] * 8) as server:
        args = ["--model", f"openai:{server.base_url}@gen", "--dataset", benchmark_file, "--output", tmp_path / "o"]
        options = ["--num-workers", 1, "--max-retries", 1, "--request-timeout", 5, "--max-requests-per-minute", 6000]
        code, lines = run_in_process(monkeypatch, capsys, *args, *options)
        assert code == 1 and "HTTP 503" in lines[0] and "(after 2 attempts)" in lines[0], lines
        assert server.num_requests == 2  # one retry, as asked (the default is 3)


# ---------------------------------------------------------------------------------------------- read_responses
def record(index, **changes):
    fields = {
        "id": f"rows.jsonl:{index}",
        "row": index,
        "prompt": f"query {index}",
        "messages": [{"role": "user", "content": f"query {index}"}],
        "response": f"answer {index}\u2028with a line separator",
        "persona": {"profile": "Concise"},
        "reference": {"chosen": "c", "rejected": "r"},
    }
    return ResponseRecord(**{**fields, **changes})


def test_read_responses_round_trip(tmp_path):
    rubric = [{"criteria": "Brief?", "score_descriptions": {str(s): f"{s}" for s in range(1, 6)}}]
    records = [record(0), record(1, rubric=rubric, reference_answer="ref"), record(2, reference=None)]
    meta = {"model": "m", "num_rows": 3}
    written = write_responses(records, meta, tmp_path / "out")
    assert [p.name for p in written] == ["responses.jsonl", "generation.json"]
    assert read_responses(tmp_path / "out") == (records, meta)
    with pytest.raises(FileExistsError):
        write_responses(records, meta, tmp_path / "out")
    with pytest.raises(ValueError, match="share the id"):
        write_responses([record(0), record(0)], meta, tmp_path / "dupes")


def write_lines(folder, lines, meta=None):
    folder.mkdir()
    (folder / "responses.jsonl").write_text("".join(line + "\n" for line in lines))
    (folder / "generation.json").write_text(json.dumps(meta if meta is not None else {"model": "m"}))
    return folder


def test_read_responses_errors_name_the_file_and_line(tmp_path):
    good = json.dumps(record(0).to_dict())
    minimal = json.dumps(
        {k: v for k, v in record(1).to_dict().items() if k in ("id", "row", "prompt", "messages", "response")}
    )
    assert read_responses(write_lines(tmp_path / "minimal", [good, "", minimal]))[0][1] == record(
        1, persona={}, reference=None
    )
    cases = {
        "missing": (None, "no such folder"),
        "no_file": ([], "no responses.jsonl"),
        "bad_json": ([good, "{not json"], "responses.jsonl, line 2: not JSON"),
        "missing_field": (
            [good, json.dumps({"id": "x", "row": 1})],
            "line 2: missing field(s) 'prompt', 'messages', 'response'",
        ),
        "bad_field": (
            [json.dumps({**record(0).to_dict(), "row": "3"})],
            "line 1, field 'row': expected an integer >= 0, got string",
        ),
        "bad_message": ([json.dumps({**record(0).to_dict(), "messages": [{"role": "user"}]})], "field 'messages[0]'"),
        "not_object": (["[1, 2]"], "line 1: expected a JSON object (a response record), got list"),
        "repeated_id": ([good, good], "line 2: id 'rows.jsonl:0' repeats line 1"),
        "empty": ([""], "no response records"),
        "count": ([good], "1 records, but generation.json says num_rows 2"),
    }
    for name, (lines, message) in cases.items():
        folder = tmp_path / name
        if lines == []:
            folder.mkdir()
            (folder / "generation.json").write_text("{}")
        elif lines is not None:
            write_lines(folder, lines, {"num_rows": 2} if name == "count" else None)
        with pytest.raises(ValueError) as error:
            read_responses(folder)
        assert message in str(error.value) and "\n" not in str(error.value), (name, str(error.value))


@pytest.mark.parametrize("seed", [-1, 2**63, True])
def test_a_seed_no_backend_takes_is_refused_before_anything_loads(seed):
    from personalign.errors import InputError
    from personalign.evaluation.generate import GenerationEvalConfig

    with pytest.raises(InputError, match=r"the seed \(--seed\) must be an integer from 0 to 2\*\*63 - 1"):
        GenerationEvalConfig(seed=seed)
