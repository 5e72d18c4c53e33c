"""Naming the rows of a dataset in messages, saying which base the number is in: a JSON-lines row by its 1-based line
(as an editor shows it), any other row by its 0-based position.

Light on purpose (no `datasets`, no torch): every module that names a row imports it, the LLM inferencer and the
judges included. `personalign.data.loading` re-exports `RowNames`; `DatasetSource.row_names` builds one per split.
"""

from __future__ import annotations

import codecs
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def file_row(files: Sequence[tuple[str, int]], index: int) -> tuple[str, int]:
    """The file holding a split's row `index` and the row's position in that file, from the split's `(path, first
    row)` list (`DatasetSource.files`)."""
    position = max(bisect_right([start for _, start in files], index) - 1, 0)
    path, start = files[position]
    return path, index - start


def json_lines_layout(path: str | Path) -> tuple[int, ...] | None:
    """How the rows of a local data file map to the lines an editor shows: for a JSON-lines file (`.jsonl`, or a
    `.json` file that is not a JSON list), the 1-based numbers of its blank lines, which `datasets` skips (so row
    `i` is line `i + 1` plus the blank lines before it); `None` for a file whose rows are not lines (parquet, a JSON
    list) or a path that is not a local file. Reads the file once, line by line.

    Args:
        path (`str` or `Path`): The file.

    Returns:
        `tuple[int, ...]` or `None`: The blank lines' numbers, in order, for JSON lines; else `None`.
    """
    path = Path(path)
    if path.suffix not in (".jsonl", ".json") or not path.is_file():
        return None
    blank: list[int] = []
    first = True
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.removeprefix(codecs.BOM_UTF8).strip():
                blank.append(number)
            elif first:  # the first line with text says what the file is: a JSON list opens with `[`
                if line.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"["):
                    return None
                first = False
    return tuple(blank)


@dataclass(frozen=True)
class RowNames:
    """Names the rows of a split (or of one file) in messages, saying which base the number is in: a row of a
    JSON-lines file is its line, 1-based as an editor shows it (`"rows.jsonl, line 12"`); any other row (parquet, a
    JSON list, a Hub split, rows in memory) is its 0-based position (`"rows.parquet, row 11 (0-based)"`). The rows of
    a local folder are named by their file and their place in it.

    Build it once per split (`RowNames.of`, or `DatasetSource.row_names`) and call it per row: the files are read
    once, up front, to find blank lines (which `datasets` skips, so they shift the line numbers).

    Args:
        where (`str`): The split (or Hub split, or rows in memory) for messages, when its files are unknown.
        files (`tuple[tuple[str, int], ...]`, *optional*): The split's local files in order as `(path, first row)`
            (see `file_row`).
        blank_lines (`tuple`, *optional*): For each file, `json_lines_layout` of it.

    Example:

    ```python
    >>> names = RowNames.of("bench [train]", [("bench/a.jsonl", 0), ("bench/b.parquet", 10)])
    >>> names(3), names(12)
    ('bench/a.jsonl, line 4', 'bench/b.parquet, row 2 (0-based)')
    ```
    """

    where: str
    files: tuple[tuple[str, int], ...] = ()
    blank_lines: tuple[tuple[int, ...] | None, ...] = ()

    @classmethod
    def of(cls, where: str, files: Sequence[tuple[str, int]] | None = None) -> RowNames:
        """The names of a split's rows: `where` for all of them, or with `files` each row's file and place in it."""
        files = tuple(files or ())
        return cls(where, files, tuple(json_lines_layout(path) for path, _ in files))

    def __call__(self, index: int) -> str:
        """The split's row `index` (0-based) for messages."""
        if not self.files:
            return f"{self.where}, row {index} (0-based)"
        position = max(bisect_right([start for _, start in self.files], index) - 1, 0)
        path, start = self.files[position]
        row, blank = index - start, self.blank_lines[position]
        if blank is None:
            return f"{path}, row {row} (0-based)"
        line = row + 1
        for number in blank:  # the blank lines before the row's line each push it one down
            if number > line:
                break
            line += 1
        return f"{path}, line {line}"


def row_name(where: str, files: Sequence[tuple[str, int]] | None, index: int) -> str:
    """A split's row `index` for messages (see `RowNames`: a JSON-lines row is named by its 1-based line, any other
    row by its 0-based position): `"<file>, line <n>"` / `"<file>, row <n> (0-based)"` when the split's files are
    known, else `"<where>, row <index> (0-based)"`. Reads the files each call: for many rows, build a `RowNames`
    once."""
    return RowNames.of(where, files)(index)
