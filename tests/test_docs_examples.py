"""Every ```python block of README.md and of the documentation pages (docs/**/*.md, except the generated API
reference docs/reference/) runs here, so the examples cannot rot.

- One test per page (its id is the page's path): the page's python blocks run in order in one namespace, in a
  temporary working folder (with the repository's `examples/` linked in, as in a clone), offline (conftest sets HF_HUB_OFFLINE), on the tiny test assets. A failure names the page
  and the Markdown line of the statement that failed (each block is compiled with its page as the file name and its
  own line numbers).
- Python blocks are the fences tagged `python`, `py`, `python3` or `pycon`, in any case, with or without attributes
  (```` ```python title="x.py" ````); a `pycon` block runs its `>>> ` / `... ` lines (its output lines are not
  compared).
- A block is skipped only when the line before its fence is `<!-- docs-test: skip (reason) -->`, with a reason (a GPU,
  vLLM, a server or a Hub push: what a CPU-only offline run cannot do). Any other comment starting `<!-- docs-test`
  (or `<!-- doc-test`) fails `test_docs_test_comments_are_skip_tags`, naming the page and line: a tag without a
  reason, a misspelt one, or a tag that is not the line right before a fence.
- Relative links of README.md and of the pages (`[text](docs/x.md#anchor)`) must name an existing file and, for a
  Markdown target, an existing heading (`test_relative_links_and_anchors_resolve`): README.md is outside the site,
  so the strict build never sees its links.
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
import unicodedata
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

SKIP_TAG = re.compile(r"^\s*<!--\s*docs-test:\s*skip\s*\((?P<reason>[^)]*\w[^)]*)\)\s*-->\s*$")
# Anything that looks meant as a docs-test tag (a misspelling included); it must then be a SKIP_TAG.
TAG_LIKE = re.compile(r"<!--\s*docs?[-_ ]?tests?\b", re.IGNORECASE)
# A fence with its language and optional attributes (```python title="x.py"); the closing fence is a bare ```.
FENCE = re.compile(r"^(?P<indent>\s*)```\s*(?P<lang>[\w+-]*)[^`]*$")
# The fence languages that run as Python (compared in lower case).
PYTHON_LANGS = {"python", "py", "python3", "pycon"}


def pages() -> list[Path]:
    docs = sorted(p for p in (ROOT / "docs").rglob("*.md") if "reference" not in p.relative_to(ROOT / "docs").parts)
    return [ROOT / "README.md", *docs]


@dataclass
class Block:
    lang: str
    line: int  # 1-based line of the block's first code line
    code: str
    skip: str | None  # the reason, when tagged

    @property
    def is_python(self) -> bool:
        return self.lang.lower() in PYTHON_LANGS


def pycon_source(code: str) -> str:
    """The statements of a `pycon` block (`>>> ` and `... ` lines, prompts removed); its output lines become blank
    lines, so that line numbers stay the Markdown's."""
    lines = []
    for line in code.split("\n"):
        stripped = line.strip()
        if stripped.startswith((">>> ", "... ")) or stripped in (">>>", "..."):
            lines.append(line.lstrip()[4:])
        else:
            lines.append("")
    return "\n".join(lines)


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
        if not block.is_python:
            continue
        if block.skip:
            skipped += 1
            continue
        source = pycon_source(block.code) if block.lang.lower() == "pycon" else block.code
        # Padding with newlines makes tracebacks name the Markdown line of the failing statement.
        code = "\n" * (block.line - 1) + _mapped(source, docs_assets)
        try:
            exec(compile(code, relative, "exec"), namespace)
        except Exception:
            pytest.fail(f"{relative}: the python block at line {block.line} failed:\n{traceback.format_exc()}")
        executed += 1
    print(
        f"{relative}: {executed} python block(s) executed, {skipped} skipped ({time.perf_counter() - started:.1f} s)"
    )


def tag_problems(path: Path, relative: str) -> list[str]:
    """Every comment of a page that looks like a docs-test tag but is not a valid skip tag right before a fence.

    Args:
        path (`Path`): The Markdown page.
        relative (`str`): Its name in the messages.

    Returns:
        `list[str]`: One `page:line: problem` per bad comment.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = []
    for number, line in enumerate(lines, 1):
        if not TAG_LIKE.search(line):
            continue
        if not SKIP_TAG.match(line):
            problems.append(
                f"{relative}:{number}: {line.strip()!r} is not a skip tag: write `<!-- docs-test: skip (reason) -->`"
            )
            continue
        following = next((text for text in lines[number:] if text.strip()), "")
        if not FENCE.match(following) or not FENCE.match(following)["lang"]:
            problems.append(f"{relative}:{number}: the skip tag is not followed by a fenced block")
    return problems


def test_docs_test_comments_are_skip_tags():
    problems = [problem for page in PAGES for problem in tag_problems(page, str(page.relative_to(ROOT)))]
    assert not problems, "\n".join(problems)


def test_tag_problems_name_page_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: skip -->\n```python\nx\n```\n<!-- docs-test: skip () -->\n```py\nx\n```\n"
        "<!-- doc-test: skip (typo) -->\n```python\nx\n```\n<!-- docs-test: skip (GPU-only) -->\n```python\nx\n```\n"
        "<!-- docs-test: skip (dangling) -->\n\ntext\n",
        encoding="utf-8",
    )
    problems = tag_problems(page, "page.md")
    assert [p.split(":")[1] for p in problems] == ["1", "5", "9", "17"]
    assert "is not a skip tag" in problems[0] and "not followed by a fenced block" in problems[3]


def test_every_skip_has_a_reason_and_the_examples_are_counted():
    """Counts what the page tests run: every python block runs unless tagged with a reason (a tag without a reason
    fails `test_docs_test_comments_are_skip_tags`)."""
    executed = skipped = 0
    for page in PAGES:
        for block in blocks(page):
            if block.is_python:
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


def test_python_fence_variants_run(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        '```py\na = 1\n```\n```Python3\nb = 2\n```\n```python title="x.py"\nc = 3\n```\n'
        "```pycon\n>>> d = a + b + c\n>>> d\n6\n```\n```text\nno\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.lang, b.is_python) for b in found] == [
        ("py", True),
        ("Python3", True),
        ("python", True),
        ("pycon", True),
        ("text", False),
    ]
    namespace: dict = {}
    for block in found[:3]:
        exec(block.code, namespace)
    exec(pycon_source(found[3].code), namespace)
    assert namespace["d"] == 6
    assert pycon_source(found[3].code).split("\n")[:3] == ["d = a + b + c", "d", ""]


def test_names_map_only_as_quoted_literals():
    assets = {key: Path(f"/local/{key}") for key in set(NAME_MAP.values())}
    code = 'm = "Qwen/Qwen2.5-0.5B-Instruct"  # like Qwen/Qwen2.5-0.5B-Instruct\n'
    assert _mapped(code, assets) == 'm = "/local/causal_lm"  # like Qwen/Qwen2.5-0.5B-Instruct\n'


# --- relative links and anchors (README.md is outside the site: the strict build never checks its links) ---

LINK = re.compile(r"!?\[[^\]]*\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")
# Pages whose headings the build generates (mkdocstrings, the CLI reference): a link's file is checked, not its anchor.
GENERATED = ("docs/reference/", "docs/cli.md")


def _slugs(text: str) -> set[str]:
    """The anchors a heading gets: Python-Markdown's (the site: mkdocs' `toc`) and GitHub's (the README on GitHub)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text
    text = re.sub(r"[`*]", "", text)
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    markdown = re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_text).strip().lower())
    github = re.sub(r" ", "-", re.sub(r"[^\w\- ]", "", text.strip().lower()))
    return {markdown, github}


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file: its headings' slugs (with the `_1` / `-1` suffixes of repeated ones) and the
    explicit ids (`{#id}`, `id="..."`)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        found.update(re.findall(r"""\bid=["']([^"']+)["']""", line))
        heading = HEADING.match(line)
        if not heading:
            continue
        text = heading["text"]
        if explicit := re.search(r"\{[^}]*#([\w-]+)[^}]*\}\s*$", text):
            found.add(explicit.group(1))
            text = text[: explicit.start()]
        for slug in _slugs(text):
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found |= {slug, f"{slug}_{count}", f"{slug}-{count}"} if count else {slug}
    return found


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    """The relative links of a Markdown file (outside code) whose file does not exist or whose anchor is no heading.

    Args:
        path (`Path`): The Markdown file.
        root (`Path`, *optional*, defaults to the repository root): Where the messages' paths start.

    Returns:
        `list[str]`: One `file:line: problem` per broken link.
    """
    relative = path.relative_to(root).as_posix()
    problems, in_fence = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in LINK.finditer(re.sub(r"`[^`]*`", "", line)):
            target = match["target"].strip("<>")
            if re.match(r"^[a-zA-Z][\w+.-]*:|^//", target):  # https:, mailto:, ...
                continue
            file_part, _, anchor = target.partition("#")
            target_path = (path.parent / file_part).resolve() if file_part else path
            if not target_path.exists():
                problems.append(f"{relative}:{number}: {target!r}: no such file")
                continue
            shown = target_path.relative_to(root).as_posix() if target_path.is_relative_to(root) else str(target_path)
            checked = anchor and target_path.suffix == ".md" and not shown.startswith(GENERATED)
            if checked and anchor not in anchors(target_path):
                problems.append(f"{relative}:{number}: {target!r}: {shown} has no heading #{anchor}")
    return problems


def test_relative_links_and_anchors_resolve():
    problems = [problem for page in PAGES for problem in link_problems(page)]
    assert not problems, "\n".join(problems)


def test_link_problems_finds_missing_files_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(
        "# Page\n\n## `train` from YAML\n\n## Again\n\n## Again\n\n### Custom {#mine}\n", encoding="utf-8"
    )
    (tmp_path / "README.md").write_text(
        "[ok](docs/page.md) [ok](docs/page.md#train-from-yaml) [ok](docs/page.md#again_1) [ok](docs/page.md#mine)\n"
        "[web](https://example.org/x) `[code](nosuch.md)`\n"
        "```\n[fenced](nosuch.md)\n```\n"
        "[gone](docs/nosuch.md) [bad](docs/page.md#nope) ![img](docs/fig.png) [self](#page)\n"
        "# Page\n",
        encoding="utf-8",
    )
    assert link_problems(tmp_path / "README.md", tmp_path) == [
        "README.md:6: 'docs/nosuch.md': no such file",
        "README.md:6: 'docs/page.md#nope': docs/page.md has no heading #nope",
        "README.md:6: 'docs/fig.png': no such file",
    ]
