"""`personalign.data.loading`: the one loader, over every kind of source, and the multifacet-cf build check."""

import json
import shutil
import sys

import pytest
from datasets import Dataset, DatasetDict

from personalign.cli import app, run
from personalign.data.loading import (
    PRIMARY_CONFIGS,
    dataset_configs,
    load_configs,
    load_rows,
    load_source,
    read_data_file,
)
from personalign.data.multifacet import MultifacetBuildConfig, build_multifacet_cf, multifacet_cf_responses
from personalign.data.synthetic import MULTIFACETED_FEATURES, multifaceted_rows
from personalign.errors import InputError
from personalign.hub.datasets import write_dataset_folder
from personalign.io import write_rows
from personalign.row_names import RowNames, json_lines_layout

ROWS = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(5)]


def write_built(configs, folder, default=None):
    """A dataset folder as `personalign build-dataset` writes one: shards, and a card declaring each config."""
    card = "---\nconfigs:\n"
    for name, splits in configs.items():
        card += f"- config_name: {name}\n" + ("  default: true\n" if name == default else "") + "  data_files:\n"
        card += "".join(f"  - split: {split}\n    path: {name}/{split}-*.parquet\n" for split in splits)
    return write_dataset_folder(configs, folder, card + "---\n")


def write_json_list(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


def test_a_file_is_the_train_split_in_every_format(tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    write_rows(ROWS, jsonl, progress=False)
    listed = write_json_list(tmp_path / "rows.json", ROWS)
    parquet = tmp_path / "rows.parquet"
    Dataset.from_list(ROWS).to_parquet(str(parquet))
    for path in (jsonl, listed, parquet):
        source = load_source(path)
        assert source.splits == ["train"] and source.config is None and source.configs == ()
        assert source.split("train").to_list() == ROWS
        assert source.all_parts()[0][0] == str(path) and source.where("train") == f"{path} [train]"
        assert source.files("train") is None and source.benchmarks("train") is None
    assert load_rows(listed).to_list() == ROWS


def test_a_folder_keeps_each_rows_file(tmp_path):
    folder = tmp_path / "bench"
    write_json_list(folder / "p_soups.json", ROWS[:3])
    write_json_list(folder / "prism.json", [{**row, "profile": "x"} for row in ROWS[3:]])
    source = load_source(folder)
    assert source.splits == ["train"]
    train = source.split("train")
    assert len(train) == 5 and train["profile"] == [None, None, None, "x", "x"]  # a missing column is null
    assert source.files("train") == [(str(folder / "p_soups.json"), 0), (str(folder / "prism.json"), 3)]
    assert source.benchmarks("train") == ["p_soups"] * 3 + ["prism"] * 2
    with pytest.raises(ValueError, match=r"dataset .*bench has no split 'validation'; its splits: "):
        source.split("validation")
    # split by file name as `datasets.load_dataset(folder)`: once a file names a split, the others are left out
    write_json_list(folder / "test.json", ROWS[:1])
    write_json_list(folder / "train.json", ROWS[1:])
    source = load_source(folder)
    assert source.splits == ["train", "test"]
    assert source.files("test") == [(str(folder / "test.json"), 0)] and source.benchmarks("test") is None


def test_built_folders_read_their_primary_config_or_the_one_asked(tmp_path):
    splits = DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:2])})
    other = DatasetDict({"train": Dataset.from_list(ROWS[:1])})
    built = write_built({"pba": other, "raw": splits}, tmp_path / "built")
    assert dataset_configs(built) == ("pba", "raw")
    source = load_source(built)
    assert source.config == "raw" == next(c for c in PRIMARY_CONFIGS if c in source.configs)
    assert source.split("test").to_list() == ROWS[:2] and source.where("test") == f"{built} [test]"
    assert source.files("test") is None  # rows of a card folder are named by split, not file
    assert load_rows(built, "pba").to_list() == ROWS[:1]
    assert source.with_config("pba").split("train").to_list() == ROWS[:1]
    assert {name: len(data["train"]) for name, data in load_configs(built).items()} == {"pba": 1, "raw": 5}
    with pytest.raises(ValueError, match="has no config 'ica'; its configs: pba, raw"):
        load_source(built, "ica")
    with pytest.raises(ValueError, match="has no config 'ica'; its configs: pba, raw"):
        source.with_config("ica")


def test_other_configs_follow_the_cards_default_or_need_a_choice(tmp_path):
    sft, dpo = (DatasetDict({"train": Dataset.from_list(rows)}) for rows in (ROWS[:2], ROWS))
    built = write_built({"rs_sft": sft, "rs_dpo": dpo}, tmp_path / "rs")
    with pytest.raises(ValueError, match=f"dataset {built} has configs rs_sft, rs_dpo: pick one"):
        load_source(built)
    assert load_rows(built, "rs_dpo").to_list() == ROWS
    marked = write_built({"rs_sft": sft, "rs_dpo": dpo}, tmp_path / "marked", default="rs_dpo")
    source = load_source(marked)
    assert source.config == "rs_dpo" and source.split("train").to_list() == ROWS
    only = write_built({"rs_sft": sft}, tmp_path / "only")
    assert load_source(only).config == "rs_sft"


def test_a_rebuilt_or_same_named_card_folder_reads_its_own_rows(tmp_path):
    """`datasets` keys its cache of a card folder by the folder's name and the card's patterns alone: a rebuilt
    folder, or another folder of the same name, was read from the first one's cache (stale rows)."""
    first, second = (tmp_path / name / "aloe" for name in ("a", "b"))
    write_built({"preference": DatasetDict({"train": Dataset.from_list(ROWS[:2])})}, first)
    write_built({"preference": DatasetDict({"train": Dataset.from_list(ROWS[2:])})}, second)
    assert load_rows(first, "preference").to_list() == ROWS[:2]
    assert load_rows(second, "preference").to_list() == ROWS[2:]
    rebuilt = DatasetDict({"train": Dataset.from_list(ROWS[1:4]), "test": Dataset.from_list(ROWS[:1])})
    shutil.rmtree(first)
    write_built({"preference": rebuilt}, first)
    source = load_source(first)
    assert source.splits == ["train", "test"] and source.split("train").to_list() == ROWS[1:4]
    assert source.split("test").to_list() == ROWS[:1]


def test_saved_to_disk_folders(tmp_path):
    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(tmp_path / "d")
    Dataset.from_list(ROWS).save_to_disk(tmp_path / "s")
    assert load_rows(tmp_path / "d", split="test").to_list() == ROWS[:1]
    assert load_rows(tmp_path / "s").to_list() == ROWS
    with pytest.raises(ValueError, match="save_to_disk has no configs"):
        load_source(tmp_path / "d", "raw")


def test_bad_sources_are_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "missing.parquet"
    with pytest.raises(ValueError, match=f"dataset {missing}: no such file or folder"):
        load_source(missing)
    with pytest.raises(ValueError, match=f"dataset {missing}: no such file or folder"):
        load_configs(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"prompt": "a",')
    with pytest.raises(ValueError, match=f"{broken}, line 1, column 17: not valid JSON"):
        load_source(broken)
    # files with no rows: an empty JSON list, an empty file (datasets fails on these with a bare StopIteration or
    # a message that names no file)
    no_rows = tmp_path / "no_rows.json"
    no_rows.write_text("[]")
    with pytest.raises(InputError, match=f"{no_rows}: holds no rows"):
        load_source(no_rows)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError, match=f"{empty}: the file is empty; expected rows"):
        load_source(empty)
    csv = tmp_path / "rows.csv"
    csv.write_text("prompt\na\n")
    with pytest.raises(ValueError, match=r"rows.csv: expected a \.parquet, \.jsonl, \.json file"):
        read_data_file(csv)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.parquet, \.jsonl, \.json files found"):
        load_source(tmp_path / "empty")
    with pytest.raises(ValueError, match="a data file or a folder of data files has no configs"):
        load_source(broken, "raw")
    # files whose columns conflict in type cannot form one split, and the message names them
    folder = tmp_path / "mixed"
    write_json_list(folder / "a.json", [{"x": "text"}])
    write_json_list(folder / "b.json", [{"x": 3}])
    with pytest.raises(ValueError, match=f"the files {folder / 'a.json'}, {folder / 'b.json'} cannot form one split"):
        load_rows(folder)


def test_multifacet_cf_responses_is_the_one_build_check(tmp_path):
    source = tmp_path / "source.jsonl"
    write_rows(multifaceted_rows(12, seed=0), source, MULTIFACETED_FEATURES, progress=False)
    configs, _ = build_multifacet_cf(source, MultifacetBuildConfig(history_size=2, test_instructions=2))
    built = write_built(configs, tmp_path / "built")
    loaded = load_source(built)
    assert loaded.config == "counterfactual" and set(loaded.configs) == {"counterfactual", "responses"}
    responses = multifacet_cf_responses(loaded)
    assert responses is not None and len(responses) == len(configs["responses"]["train"])
    assert multifacet_cf_responses(load_source(source)) is None  # a plain file is not a build
    rows_only = tmp_path / "rows.parquet"
    configs["counterfactual"]["train"].to_parquet(str(rows_only))
    assert multifacet_cf_responses(load_source(rows_only)) is None  # history ids alone are not a build


# ----------------------------------------------------------------- issue 17: malformed files and row numbers
def jsonl_text(rows):
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_a_malformed_json_line_is_named_by_file_and_line(tmp_path):
    """Line 500 of 1000 is named as line 500 (what an editor shows), not as `datasets`' character offset; blank lines
    count as the editor counts them."""
    rows = [{"prompt": f"p{i}", "chosen": "c", "rejected": "r"} for i in range(1000)]
    lines = [json.dumps(row) for row in rows]
    lines[499] = lines[499][:-1]  # the closing brace is missing
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as error:
        load_source(path)
    message = str(error.value)
    assert message.startswith(f"{path}, line 500, column ")
    assert "not valid JSON" in message and "expected one JSON object (a row) per line" in message
    assert "position" not in message and "\n" not in message
    # blank lines shift the line numbers as an editor shows them
    path.write_text('{"a": 1}\n\n\n{"a": 2\n')
    with pytest.raises(InputError, match=rf"{path}, line 4, column 8: not valid JSON"):
        load_source(path)
    # a line that is JSON but not an object
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(InputError, match=rf"{path}, line 2: a JSON list; expected one JSON object \(a row\) per line"):
        load_source(path)


def test_a_json_file_that_is_not_valid_json_names_its_line(tmp_path):
    listed = tmp_path / "rows.json"
    listed.write_text(json.dumps(ROWS, indent=1).replace('"c3"', '"c3" "x"'))
    with pytest.raises(InputError) as error:
        load_source(listed)
    line = next(n for n, text in enumerate(listed.read_text().splitlines(), 1) if '"c3"' in text)
    assert str(error.value).startswith(f"{listed}, line {line}, column ")
    assert str(error.value).endswith("; expected a JSON list of objects (one per row).")
    listed.write_text(json.dumps([ROWS[0], "text"]))
    with pytest.raises(
        InputError, match=rf"{listed}: item 1 \(0-based\) of the JSON list is a string; expected a JSON"
    ):
        load_source(listed)


def test_a_damaged_parquet_file_is_one_line_naming_it(tmp_path, capsys):
    good = tmp_path / "good.parquet"
    Dataset.from_list(ROWS * 50).to_parquet(str(good))
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not a parquet file" * 20)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    capsys.readouterr()
    for path in (garbage, truncated):
        with pytest.raises(InputError, match=rf"^{path}: not a readable parquet file \(") as error:
            load_source(path)
        assert "\n" not in str(error.value)
    assert "Failed to read schema" not in capsys.readouterr().err  # no log line from `datasets` before the error
    # a built folder: the damaged shard is named
    built = write_built({"raw": DatasetDict({"train": Dataset.from_list(ROWS)})}, tmp_path / "built")
    shard = next((built / "raw").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:40])
    with pytest.raises(InputError, match=rf"^{shard}: not a readable parquet file"):
        load_source(built)


def test_row_names_say_which_base(tmp_path):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('\n{"a": 1}\n\n{"a": 2}\n{"a": 3}\n')
    listed = write_json_list(tmp_path / "rows.json", [{"a": 1}, {"a": 2}])
    parquet = tmp_path / "rows.parquet"
    Dataset.from_list([{"a": 1}]).to_parquet(str(parquet))
    assert json_lines_layout(jsonl) == (1, 3) and json_lines_layout(listed) is None
    assert json_lines_layout(parquet) is None and json_lines_layout(tmp_path / "missing.jsonl") is None
    names = RowNames.of("x [train]", [(str(jsonl), 0), (str(listed), 3), (str(parquet), 5)])
    assert [names(i) for i in range(6)] == [
        f"{jsonl}, line 2",
        f"{jsonl}, line 4",
        f"{jsonl}, line 5",
        f"{listed}, row 0 (0-based)",
        f"{listed}, row 1 (0-based)",
        f"{parquet}, row 0 (0-based)",
    ]
    assert RowNames.of("org/data [test]")(7) == "org/data [test], row 7 (0-based)"
    # a source names its rows: a single file by its lines; a built folder (or the Hub) by split and 0-based row
    source = load_source(jsonl)
    assert source.is_file and source.row_names("train")(2) == f"{jsonl}, line 5"
    assert source.part_row_names(str(jsonl))(0) == f"{jsonl}, line 2"
    built = write_built({"raw": DatasetDict({"train": Dataset.from_list(ROWS)})}, tmp_path / "built")
    source = load_source(built)
    assert not source.is_file and source.row_names("train")(1) == f"{built} [train], row 1 (0-based)"


def test_every_reader_path_names_the_line(tmp_path, monkeypatch, capsys):
    """build-dataset alignx and multifacet-cf, and train's --dataset_name (the one loader), name file and line."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a",, }\n')
    for command in (["build-dataset", "alignx"], ["build-dataset", "multifacet-cf"]):
        argv = ["personalign", *command, "--source", str(bad), "--output", str(tmp_path / "out")]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            run(app)
        lines = capsys.readouterr().err.strip().splitlines()
        assert exit_info.value.code == 1 and lines[-1].startswith(f"error: {bad}, line 2, column 16: not valid JSON")
        assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match=rf"{bad}, line 2, column 16: not valid JSON"):
        load_rows(bad, None, "train")  # what `train --dataset_name` calls (scripts.utils.load_datasets)


def test_bytes_that_are_not_utf8_are_named_by_line_column_and_offset(tmp_path):
    """pyarrow keeps such bytes in a text column and fails only when a row is read (a UnicodeDecodeError)."""
    lines = [json.dumps({"prompt": f"p{i}", "chosen": "c", "rejected": "r"}).encode() for i in range(4)]
    lines[2] = lines[2].replace(b'"p2"', b'"p\xff\xfe2"')
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    column = lines[2].index(b"\xff") + 1
    offset = len(b"\n".join(lines[:2])) + column
    with pytest.raises(InputError) as error:
        load_source(path)
    assert str(error.value) == (
        f"{path}, line 3, column {column}: not UTF-8 text (byte 0xff at byte offset {offset} of "
        "the file: invalid start byte); expected a UTF-8 text file (save it as UTF-8)."
    )
    listed = tmp_path / "rows.json"
    listed.write_bytes(
        b'[\n{"prompt": "a", "chosen": "b", "rejected": "c"},\n{"prompt": "\xc3", "chosen": "b", "rejected": "c"}\n]'
    )
    with pytest.raises(InputError, match=rf"{listed}, line 3, column 13: not UTF-8 text \(byte 0xc3"):
        load_source(listed)


def test_a_file_of_blank_lines_holds_no_rows(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_text("\n  \n\r\n")
    with pytest.raises(InputError, match=rf"^{path}: holds no rows \(only blank lines\); expected one JSON object"):
        load_source(path)
    listed = tmp_path / "padded.json"
    listed.write_text("[" + " " * 100 + "]")  # past the small-file check
    with pytest.raises(InputError, match=rf"^{listed}: holds no rows \(an empty JSON list\)"):
        load_source(listed)
