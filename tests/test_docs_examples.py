"""Every ```python block of README.md and of the documentation pages (docs/**/*.md, except the generated API
reference docs/reference/) runs here, so the examples cannot rot.

- One test per page (its id is the page's path): the page's python blocks run in order in one namespace, in a
  temporary working folder (with the repository's `examples/` linked in, as in a clone), offline (conftest sets HF_HUB_OFFLINE), on the tiny test assets. A failure names the page
  and the Markdown line of the statement that failed (each block is compiled with its page as the file name and its
  own line numbers).
- A block is skipped only when the line before its fence is `<!-- docs-test: skip (reason) -->`, with a reason (a GPU,
  vLLM, a server or a Hub push: what a CPU-only offline run cannot do).
- ```json blocks (the dataset rows the pages show) must parse as JSON. ```bash and ```yaml blocks are not executed.
- Realistic model and dataset names in the examples are mapped to local assets through ONE table, `NAME_MAP` below:
  each quoted occurrence of a name in a block (`"Qwen/Qwen2.5-0.5B-Instruct"`) is replaced by the quoted local path
  before the block runs. Nothing else is rewritten.
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The one table of names the examples use -> the local asset they run on here (keys of `docs_assets` below).
NAME_MAP = {
    # causal LMs -> the tiny random-init Llama-style model with a chat template (personalign.testing.tiny_causal_lm)
    "Qwen/Qwen2.5-0.5B-Instruct": "causal_lm",
    "meta-llama/Meta-Llama-3-8B-Instruct": "causal_lm",
    "meta-llama/Llama-3.1-8B-Instruct": "causal_lm",
    "my-org/pba-policy": "causal_lm",  # a trained policy's stand-in (against the same model as reference it ties)
    # encoders -> the real all-MiniLM-L6-v2 (the `assets` extra) when installed, else the tiny BERT-style encoder
    "sentence-transformers/all-MiniLM-L6-v2": "minilm",
    # a saved PersonaEncoder (an untrained mean-pooling encoder around the tiny BERT-style backbone)
    "my-org/persona-encoder": "persona_encoder",
    # datasets -> synthetic rows in the release schemas (personalign.data.synthetic)
    "JinaLeejnl/AlignX": "alignx",  # a folder: train.parquet (64 rows), as the release: one split, `train`
    "JinaLeejnl/AlignX-test": "alignx_test",  # the release's test files, a repo of their own: train.parquet (32 rows)
    "kaist-ai/Multifaceted-Collection": "multifaceted",  # one parquet file: 12 instructions x 3 answers
}

SKIP_TAG = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")


def pages() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "reference" not in p.relative_to(ROOT / "docs").parts)
    return [ROOT / "README.md", *docs]


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the block's first code line
    code: str
    skip: str | None  # the reason, when tagged


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page (indented fences inside lists included, dedented)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence or not fence["lang"]:
            i += 1
            continue
        indent, start = fence["indent"], i + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = [line[len(indent) :] if line.startswith(indent) else line.lstrip() for line in lines[start:end]]
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        tag = SKIP_TAG.match(previous)
        found.append(Block(fence["lang"], start + 1, "\n".join(body) + "\n", tag["reason"].strip() if tag else None))
        i = end + 1
    return found


PAGES = pages()
PAGE_IDS = [str(p.relative_to(ROOT)) for p in PAGES]


@pytest.fixture(scope="session")
def docs_assets(request, kit_cache, tiny_lm_path, tiny_encoder_path, tmp_path_factory):
    """The local assets `NAME_MAP` points at, built once per run."""
    from personalign import PersonaEncoder
    from personalign.data.synthetic import MULTIFACETED_FEATURES, alignx_dataset, multifaceted_rows
    from personalign.io import write_rows

    folder = tmp_path_factory.mktemp("docs-assets")
    try:
        minilm = request.getfixturevalue("minilm_path")
    except pytest.skip.Exception:  # the `assets` extra is not installed: the tiny encoder stands in
        minilm = tiny_encoder_path
    PersonaEncoder.from_pretrained(tiny_encoder_path).save_pretrained(folder / "persona-encoder")
    (folder / "alignx").mkdir()
    alignx_dataset(64, seed=0).to_parquet(str(folder / "alignx" / "train.parquet"))
    (folder / "alignx-test").mkdir()
    alignx_dataset(32, seed=1).to_parquet(str(folder / "alignx-test" / "train.parquet"))
    write_rows(multifaceted_rows(12, seed=0), folder / "multifaceted.parquet", MULTIFACETED_FEATURES, progress=False)
    return {
        "causal_lm": tiny_lm_path,
        "minilm": minilm,
        "persona_encoder": folder / "persona-encoder",
        "alignx": folder / "alignx",
        "alignx_test": folder / "alignx-test",
        "multifaceted": folder / "multifaceted.parquet",
    }


def _mapped(code: str, assets: dict) -> str:
    for name, key in NAME_MAP.items():
        local = json.dumps(str(assets[key]))
        code = code.replace(f'"{name}"', local).replace(f"'{name}'", local)
    return code


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_page_examples_run(page, docs_assets, kit_cache, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # `examples/configs/...` as from the repository root
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERSONALIGN_TESTING_CACHE", str(kit_cache))  # `tiny_causal_lm()` in a block reuses the kit
    monkeypatch.setenv("MPLBACKEND", "Agg")
    relative = str(page.relative_to(ROOT))
    # A real module, so that what a page defines (a dataclass, a pickled function) finds its module.
    module = types.ModuleType("__docs_example__")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    executed, skipped, started = 0, 0, time.perf_counter()
    for block in blocks(page):
        if block.lang == "json":
            try:
                json.loads(block.code)
            except json.JSONDecodeError as error:
                pytest.fail(f"{relative}:{block.line + error.lineno - 1}: the JSON block does not parse: {error}")
            continue
        if block.lang != "python":
            continue
        if block.skip:
            skipped += 1
            continue
        # Padding with newlines makes tracebacks name the Markdown line of the failing statement.
        code = "\n" * (block.line - 1) + _mapped(block.code, docs_assets)
        try:
            exec(compile(code, relative, "exec"), namespace)
        except Exception:
            pytest.fail(f"{relative}: the python block at line {block.line} failed:\n{traceback.format_exc()}")
        executed += 1
    print(
        f"{relative}: {executed} python block(s) executed, {skipped} skipped ({time.perf_counter() - started:.1f} s)"
    )


def test_every_skip_has_a_reason_and_the_examples_are_counted():
    """Counts what the page tests run: every python block runs unless tagged with a reason (a tag without one does
    not match and the block runs)."""
    executed = skipped = 0
    for page in PAGES:
        for block in blocks(page):
            if block.lang == "python":
                skipped += bool(block.skip)
                executed += not block.skip
    print(f"{len(PAGES)} pages: {executed} python blocks executed, {skipped} skipped")
    assert executed >= 30, f"only {executed} python blocks run"
    assert skipped <= executed // 4, f"{skipped} skipped blocks against {executed} run: rewrite them to run"


def test_the_block_parser_reads_fences_skip_tags_and_lines(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\n```\n\n<!-- docs-test: skip (GPU-only) -->\n```python\ny = 2\n```\n"
        "- item\n\n  ```python\n  z = x\n  ```\n```bash\nls\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.lang, b.line, b.code, b.skip) for b in found] == [
        ("python", 4, "x = 1\n", None),
        ("python", 9, "y = 2\n", "GPU-only"),
        ("python", 14, "z = x\n", None),
        ("bash", 17, "ls\n", None),
    ]


def test_names_map_only_as_quoted_literals():
    assets = {key: Path(f"/local/{key}") for key in set(NAME_MAP.values())}
    code = 'm = "Qwen/Qwen2.5-0.5B-Instruct"  # like Qwen/Qwen2.5-0.5B-Instruct\n'
    assert _mapped(code, assets) == 'm = "/local/causal_lm"  # like Qwen/Qwen2.5-0.5B-Instruct\n'
