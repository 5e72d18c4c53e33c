"""Writing outputs safely (atomically, never over an existing output unless asked, in constant memory, with the modes
the umask gives), and checking weight files and training checkpoints before anything loads them.

Weight files and checkpoints: a damaged or pickled file is one line naming it rather than a library's traceback.
Nothing here unpickles: a safetensors file is checked by its header (`safetensors.safe_open`, which also checks that
the file is as long as the header says), a torch-saved file by its zip directory and the globals its pickle names
(scanned, not run).

- `check_model_folder`: a local model path is a model folder (not a file, not a folder without a config) whose
  weights load (safetensors only; pickled-only folders are refused with how to convert them).
- `checkpoint_problem`: what makes a trainer checkpoint unusable, cheaply (`trainer_state.json`, written last by
  `Trainer._save_checkpoint`, present and valid; model weights present; every safetensors header readable; every
  file the trainer unpickles on resume a whole torch archive naming only what a weights-only load accepts).
- `checkpoint_to_resume`: the checkpoint `--resume` continues from: the last one, or the last complete one when the
  last was cut short by a kill during its save (said in one line).
- `check_run_unfinished`: `--resume` on a run that already reached its end is refused (the trainer would train one
  step past `max_steps`).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors import SafetensorError, safe_open

from .errors import InputError, PersonalignError

if TYPE_CHECKING:  # only for annotations: importing this module stays light (no `datasets`)
    from datasets import Features

SUPPORTED_ROW_FORMATS = (".parquet", ".jsonl")


class OutputExistsError(PersonalignError, FileExistsError):
    """An output already exists and overwriting was not requested. The message names the Python argument
    (`overwrite=True`); the command line shows its flag (`--overwrite`, `command_line_message`).

    Args:
        path (`str` or `Path`): The output, as the user gave it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(f"{self.path} already exists; pass overwrite=True to replace it.")

    def command_line_message(self) -> str:
        """The message in the command line's words (`--overwrite`, where Python users read `overwrite=True`)."""
        return f"{self.path} already exists; pass --overwrite to replace it."

    def __reduce__(self) -> tuple[type, tuple[Path]]:  # pickled (across processes) from its path, not its message
        return type(self), (self.path,)


def ensure_writable(
    path: str | Path, overwrite: bool = False, inputs: Iterable[str | os.PathLike | None] = ()
) -> Path:
    """Fail early, before any work, if `path` exists and may not be replaced, or cannot be written: its nearest
    existing parent must be a folder this process may create entries in (the missing ones between are created on
    writing). An output that is one of the run's `inputs`, or a folder holding one, is refused even with `overwrite`:
    replacing it would delete the input (`check_not_an_input`). The messages name `path` as the user gave it, never
    a staging path.

    Args:
        path (`str` or `Path`): The output file or folder.
        overwrite (`bool`, *optional*, defaults to `False`): Whether an existing `path` may be replaced.
        inputs (`Iterable[str | os.PathLike | None]`, *optional*): What the run reads (data files or folders, model
            folders, ...); names that are not local paths (Hub ids, API specs) and `None`s are skipped.

    Returns:
        `Path`: `path`.

    Raises:
        `InputError`: If `path` is, or holds, one of `inputs`, a parent of `path` is a file, or the nearest existing
            parent is not writable.
        `OutputExistsError`: If `path` exists and `overwrite` is False.
    """
    path = Path(path)
    check_not_an_input(path, inputs)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"{path}: cannot write there, {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write there, no permission to write in {parent}.")
    return path


def check_not_an_input(path: str | Path, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse an output that is one of the run's inputs, or a folder holding one: the staged output replaces `path`
    whole, so the input would be deleted. Paths are compared resolved (`./`, `..`, symbolic links, `~`); an input
    that does not exist locally (a Hub id, an API spec) cannot be hit and is skipped.

    Args:
        path (`str` or `Path`): The output.
        inputs (`Iterable[str | os.PathLike | None]`): What the run reads.

    Raises:
        `InputError`: `"<path>: is the input <input>; ..."` or `"<path>: holds the input <input>; ..."`.
    """
    output = Path(path).expanduser().resolve()
    for given in inputs:
        if given is None or str(given) == "":
            continue
        source = Path(given).expanduser()
        if not source.exists():
            continue
        resolved = source.resolve()
        if resolved == output:
            raise InputError(
                f"{path}: is the input {given}; writing the output there would delete it: choose another output."
            )
        if output in resolved.parents:
            raise InputError(
                f"{path}: holds the input {given}; writing the output there would delete it: choose another output."
            )


STAGING_SUFFIX = ".partial"
"""The suffix of the hidden staging folders of `atomic_output` (`.<name>.<pid>.<random>.partial`)."""


def staging_prefix(path: Path) -> str:
    """The start of the name of `path`'s staging folders, up to the owner's process id."""
    return f".{path.name}."


def remove_stale_staging(path: str | Path) -> list[Path]:
    """Remove the staging folders of `path` that an earlier run left behind (killed before it could clean up): those
    named `.<name>.<pid>.<random>.partial` whose process `<pid>` is gone. Folders of a live process (another run
    writing the same output) and names of another form are left alone.

    Args:
        path (`str` or `Path`): The output whose staging folders to look for (beside it).

    Returns:
        `list[Path]`: The folders removed.
    """
    path = Path(path)
    prefix = staging_prefix(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.glob(f"{glob.escape(prefix)}*{STAGING_SUFFIX}"):
        owner, _, random_part = candidate.name[len(prefix) : -len(STAGING_SUFFIX)].partition(".")
        if not (owner.isdigit() and random_part and "." not in random_part) or process_alive(int(owner)):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (one of another user's counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_umask() -> int:
    """This process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path) -> None:
    """Give `path` and everything under it the modes a new file or folder gets under the umask: folders `0o777`,
    files `0o666` (`0o777` when any execute bit is set), less the umask. Writers that stage through a private
    temporary file (safetensors writes a 0600 file and renames it) otherwise leave outputs readable by their owner
    only. Links are left alone.

    Args:
        path (`str` or `Path`): A file or folder this process wrote.
    """
    mask = current_umask()
    path = Path(path)
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if entry.is_symlink():
            continue
        mode = entry.stat().st_mode
        full = 0o777 if entry.is_dir() or mode & 0o111 else 0o666
        if stat.S_IMODE(mode) != full & ~mask:
            os.chmod(entry, full & ~mask)


@contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename, on failure it is removed.

    Works for files and folders alike: whatever the body writes at the yielded path is what lands, with the modes the
    umask gives new files and folders (`follow_umask`). The temporary path lies in a hidden staging folder
    `.<name>.<pid>.<random>.partial`; staging folders of `path` left by a run that was killed are removed first
    (`remove_stale_staging`).

    Args:
        path (`str` or `Path`): The output file or folder.
        overwrite (`bool`, *optional*, defaults to `False`): Whether an existing `path` may be replaced.

    Raises:
        `OutputExistsError`: If `path` exists and `overwrite` is False (checked before any work is done).
        `InputError`: If `path` cannot be written (`ensure_writable`), checked before any work is done.
    """
    path = ensure_writable(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(path)
    staging = Path(
        tempfile.mkdtemp(prefix=f"{staging_prefix(path)}{os.getpid()}.", suffix=STAGING_SUFFIX, dir=path.parent)
    )
    temporary = staging / path.name
    try:
        yield temporary
        if not temporary.exists():
            raise RuntimeError(f"Nothing was written for {path}.")
        follow_umask(temporary)
        if path.exists():
            # Move the old output aside first, so a crash between the two renames leaves one of them whole.
            backup = staging / f"{path.name}.previous"
            os.replace(path, backup)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _batches(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def write_rows(
    rows: Iterable[dict[str, Any]],
    path: str | Path,
    features: Features | None = None,
    overwrite: bool = False,
    batch_size: int = 10_000,
    total: int | None = None,
    progress: bool = True,
) -> int:
    """Stream rows to a `.parquet` or `.jsonl` file, batch by batch, atomically.

    Args:
        rows (`Iterable[dict]`): The rows; consumed once, never held whole in memory.
        path (`str` or `Path`): Output file; its suffix picks the format.
        features (`datasets.Features`, *optional*): Schema for parquet (required there, so types never depend on
            the first batch); also embedded as the Hugging Face schema metadata, as `Dataset.to_parquet` does.
        overwrite (`bool`, *optional*, defaults to `False`): Replace an existing output.
        batch_size (`int`, *optional*, defaults to `10000`): Rows per parquet row group / write.
        total (`int`, *optional*): Expected row count, for the progress bar.
        progress (`bool`, *optional*, defaults to `True`): Show a progress bar.

    Returns:
        `int`: The number of rows written.

    Raises:
        `OutputExistsError`: If `path` exists and `overwrite` is False.
        `InputError`: If `path` is a folder (even with `overwrite`), its suffix is not a supported format, or it
            cannot be written there (`ensure_writable`).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rich.progress import Progress

    path = Path(path)
    ensure_writable(path, overwrite)  # an existing output first: its suffix may be anything, a folder has none
    if path.is_dir():
        raise InputError(
            f"{path} is a folder, and a folder cannot be replaced by a file; name a "
            f"{', '.join(SUPPORTED_ROW_FORMATS)} file to write."
        )
    if path.suffix not in SUPPORTED_ROW_FORMATS:
        raise InputError(
            f"{path}: unsupported output format {path.suffix!r}; use one of {', '.join(SUPPORTED_ROW_FORMATS)}."
        )
    if path.suffix == ".parquet" and features is None:
        raise InputError(f"{path}: writing parquet needs the dataset features.")
    written = 0
    with atomic_output(path, overwrite=overwrite) as temporary, Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"writing {path.name}", total=total)
        if path.suffix == ".parquet":
            schema = features.arrow_schema.with_metadata(
                {"huggingface": json.dumps({"info": {"features": features.to_dict()}})}
            )
            with pq.ParquetWriter(temporary, schema) as writer:
                for batch in _batches(rows, batch_size):
                    table = pa.Table.from_pylist([features.encode_example(row) for row in batch], schema=schema)
                    writer.write_table(table)
                    written += len(batch)
                    bar.update(task, advance=len(batch))
        else:
            with temporary.open("w", encoding="utf-8") as handle:
                for batch in _batches(rows, batch_size):
                    handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in batch)
                    written += len(batch)
                    bar.update(task, advance=len(batch))
    return written


def is_repo_id(name: str) -> bool:
    """Whether `name` is a valid Hub repo id (`name` or `owner/name`, as `huggingface_hub.utils.validate_repo_id`
    accepts it): what is not cannot be on the Hub, so it can only be a local path."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


def require_local_path(name: str, kind: str, suffixes: tuple[str, ...] = ()) -> None:
    """Fail, naming `name`, when it was meant as a local path but does not exist. A Hub repo id is `name` or
    `owner/name`; something starting with `.`, `/` or `~`, with more than one `/`, ending in one of `suffixes`, or
    that is no valid repo id (`is_repo_id`: spaces, `..`, ...) is a path. Without this check a missing local folder
    reaches the Hub client, whose message is about repo ids or the connection.

    Args:
        name (`str`): A local path or a Hub repo id.
        kind (`str`): What it is, for the message (`"dataset"`, `"model"`, ...).
        suffixes (`tuple[str, ...]`, *optional*): File suffixes that mark a path (e.g. `(".json", ".parquet")`).

    Raises:
        `InputError`: `"<kind> <name>: no such file or folder."`.
    """
    if Path(name).expanduser().exists():
        return
    looks_local = (
        name.startswith((".", "/", "~"))
        or name.count("/") > 1
        or Path(name).suffix in suffixes
        or not is_repo_id(name)
    )
    if looks_local:
        raise InputError(f"{kind} {name}: no such file or folder.")


# ------------------------------------------------------------------------------ weight files and checkpoints
logger = logging.getLogger(__name__)

PICKLED_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
"""Names of pickled weight files (transformers', PEFT's and sentence-transformers' `.bin`, torch `.pt` / `.pth`,
Lightning `.ckpt`): personalign never loads them."""

RESUME_PICKLES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")
"""The files of a trainer checkpoint that `torch.save` wrote and the trainer loads on resume (weights-only
`torch.load`): zip archives since torch 1.6, so a whole one has its zip directory at its end."""

TRAINER_PICKLES = ("training_args.bin", *RESUME_PICKLES)
"""A trainer's pickled state, which sits beside the weights of a trained folder or checkpoint without being any
(`training_args.bin` is never loaded)."""

WEIGHTS_ONLY_ALLOWED = ("numpy.",)
"""Globals a trainer's weights-only load accepts beyond torch's own: numpy arrays in the RNG state
(`transformers.trainer_pt_utils.safe_globals`)."""

TRAINER_STATE = "trainer_state.json"
"""`transformers.trainer.TRAINER_STATE_NAME`: the last file `Trainer._save_checkpoint` writes."""

CHECKPOINT_PATTERN = re.compile(r"checkpoint-(\d+)")
"""A trainer checkpoint folder's name (`transformers.trainer_utils.PREFIX_CHECKPOINT_DIR` + `-<step>`)."""

CONVERT_HINT = (
    "load them once in a trusted environment and save them as safetensors, e.g. "
    "AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)"
)


def one_line(error: BaseException) -> str:
    """`error`'s message on one line (its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def safetensors_problem(path: str | Path) -> str | None:
    """Why the safetensors file at `path` does not load, or `None` when it does. Reads its header only (and the
    file's size, against the offsets of the header): cheap at any size.

    Args:
        path (`str` or `Path`): The file.

    Returns:
        `str` or `None`: The reason on one line (e.g. `"Error while deserializing header: incomplete metadata, file
        not fully covered"` for a truncated file).
    """
    try:
        with safe_open(str(path), framework="numpy") as weights:
            weights.keys()
    except (OSError, ValueError, SafetensorError) as error:
        return one_line(error)
    return None


def torch_file_problem(path: str | Path) -> str | None:
    """Why the trainer's weights-only `torch.load` of the `torch.save` file at `path` would fail, or `None`, found
    without unpickling it: the file must be a zip archive (what `torch.save` writes) whose directory, at the end of
    the file, reads (a truncated file, or a plain pickle in its place, fails), and its pickle may name no global
    that a weights-only load refuses (`torch.serialization.get_unsafe_globals_in_checkpoint`, which scans the pickle's
    opcodes; on a torch without it, torch < 2.5, this part is skipped).

    Returns:
        `str` or `None`: The reason on one line.
    """
    import torch  # here, not at the top: the CLI imports this module, and torch only when a checkpoint is checked

    try:
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return "not a torch.save archive (no data.pkl)"
    except (OSError, zipfile.BadZipFile) as error:
        return f"not a whole torch.save archive ({one_line(error)})"
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        found = [] if scan is None else scan(str(path))
    except (RuntimeError, ValueError) as error:  # torch's archive reader on a zip that is not torch's layout
        return f"not a torch.save archive ({one_line(error)})"
    unsafe = [name for name in found if not name.startswith(WEIGHTS_ONLY_ALLOWED)]
    if unsafe:
        return f"holds objects a weights-only load refuses ({', '.join(unsafe)}), and personalign never unpickles"
    return None


MODEL_FOLDER_MARKERS = ("config.json", "adapter_config.json", "modules.json")
"""The file one of which every model folder personalign loads has at its top: `config.json` (what `save_pretrained`
writes, read by transformers' `Auto*` classes and by sentence-transformers for a plain transformers folder),
`adapter_config.json` (a PEFT adapter, which transformers and PEFT load on top of its base model) or `modules.json`
(a sentence-transformers model)."""


OTHER_FOLDERS = {
    "learned_inference_config.json": (
        "a learned preference inferencer folder",
        "infer preferences with it through `personalign infer-preferences --inferencer learned`",
    ),
    "responses.jsonl": ("a responses folder of `personalign generate`", "judge it with `personalign judge`"),
    "preferences.jsonl": (
        "an inferred-preferences folder of `personalign infer-preferences`",
        "pass it as --preferences",
    ),
}
"""Folders personalign writes that are not model folders, by the file that marks them (the learned inferencer's
`personalign.inference.learned.CONFIG_NAME`, the responses and preferences folders' files): what the folder is and
what to do with it, for the message of `check_model_folder` when one is given as a model."""


def check_model_folder(name: str | Path, kind: str = "model") -> None:
    """Check a local model path before it is loaded: it is a folder (not a file) holding one of
    `MODEL_FOLDER_MARKERS`, every safetensors file in it and in its immediate subfolders (a sentence-transformers
    model's modules, DPORE's `projection_head/`) loads, and no folder holds pickled weights only (`PICKLED_WEIGHTS`,
    which personalign never unpickles). Checkpoints (`checkpoint-*`) and hidden folders are not looked at. A Hub id
    passes; a missing local path is named (`require_local_path`).

    Args:
        name (`str` or `Path`): The folder (or a Hub id).
        kind (`str`, *optional*, defaults to `"model"`): What it is, for the message.

    Raises:
        `InputError`: `"<kind> <name>: no such file or folder."` for a missing local path;
            `"<kind> <name>: is a file; expected a model folder ..."`; `"<kind> <name>: no config.json ..."` for a
            folder without any of `MODEL_FOLDER_MARKERS` (naming what it is when one of `OTHER_FOLDERS`);
            `"<kind> <file>: does not load (<reason>)."`, or, for a folder of pickled weights only, one line saying so
            and how to convert them.
    """
    require_local_path(str(name), kind)
    folder = Path(name).expanduser()
    if folder.is_file():
        raise InputError(
            f"{kind} {name}: is a file; expected a model folder (as save_pretrained writes it) or a Hub id."
        )
    if not folder.is_dir():
        return
    if not any((folder / marker).is_file() for marker in MODEL_FOLDER_MARKERS):
        for marker, (what, remedy) in OTHER_FOLDERS.items():
            if (folder / marker).is_file():
                raise InputError(f"{kind} {name}: {what} ({marker}), not a model folder; {remedy}.")
        raise InputError(
            f"{kind} {name}: no config.json (nor adapter_config.json of a PEFT adapter, nor modules.json of a "
            "sentence-transformers model); expected a model folder as save_pretrained writes it, or a Hub id."
        )
    subfolders = [
        path
        for path in sorted(folder.iterdir())
        if path.is_dir() and not path.name.startswith(".") and not CHECKPOINT_PATTERN.fullmatch(path.name)
    ]
    for part in (folder, *subfolders):
        weights = sorted(part.glob("*.safetensors"))
        for path in weights:
            problem = safetensors_problem(path)
            if problem is not None:
                raise InputError(f"{kind} {path}: does not load ({problem}).")
        pickled = pickled_weights(part)
        if pickled and not weights:
            raise InputError(
                f"{kind} {part}: holds only pickled weights ({', '.join(pickled)}); personalign loads safetensors "
                f"only and never unpickles. To convert them, {CONVERT_HINT}."
            )


def pickled_weights(folder: Path) -> list[str]:
    """The names of the pickled weight files in `folder` (`PICKLED_WEIGHTS`, not `TRAINER_PICKLES`), sorted."""
    names = {path.name for pattern in PICKLED_WEIGHTS for path in folder.glob(pattern) if path.is_file()}
    return sorted(name for name in names if not any(fnmatch(name, pattern) for pattern in TRAINER_PICKLES))


def checkpoint_problem(checkpoint: str | Path) -> str | None:
    """What makes a trainer checkpoint unusable, or `None` for an intact one. Cheap (no tensor is read):

    - `trainer_state.json` present and valid JSON (`Trainer._save_checkpoint` writes it last, so a checkpoint cut
      short by a kill during its save has none);
    - the model's weights present (`checkpoint_weights_problem`);
    - every safetensors file, at any depth, loads (`safetensors_problem`);
    - every `torch.save` file the trainer loads on resume (`RESUME_PICKLES`: optimizer, scheduler, RNG state) is a
      whole torch archive holding what a weights-only load accepts (`torch_file_problem`).

    Args:
        checkpoint (`str` or `Path`): A `checkpoint-<step>` folder.

    Returns:
        `str` or `None`: `"<file>: <reason>"` for the first problem found.
    """
    checkpoint = Path(checkpoint)
    problem = trainer_state_problem(checkpoint) or checkpoint_weights_problem(checkpoint)
    if problem is not None:
        return problem
    for path in sorted(checkpoint.rglob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem is not None:
            return f"{path}: does not load ({problem})"
    for path in sorted(p for pattern in RESUME_PICKLES for p in checkpoint.rglob(pattern)):
        problem = torch_file_problem(path)
        if problem is not None:
            return f"{path}: {problem}"
    return None


CHECKPOINT_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "adapter_model.bin",
)
"""The weight files one of which `transformers.Trainer._load_from_checkpoint` needs at a checkpoint's top (else
`ValueError: Can't find a valid checkpoint`): the whole model (safetensors or, from older runs, pickled), its sharded
index, or a PEFT adapter's weights."""


def checkpoint_weights_problem(checkpoint: Path) -> str | None:
    """Why the model weights of a trainer checkpoint are missing, or `None`: one of `CHECKPOINT_WEIGHTS` must be
    there (or, in a subfolder, a PEFT adapter's, as the trainer also accepts), and a sharded index's shards must all
    be. Layouts the trainer loads by another path are not looked at: a sentence-transformers checkpoint
    (`modules.json`, loaded by its own trainer), DeepSpeed (`global_step*/`) and FSDP (`pytorch_model_fsdp*`).

    Returns:
        `str` or `None`: `"<checkpoint>/model.safetensors is missing (...)"` or `"<shard> is missing (...)"`.
    """
    if (checkpoint / "modules.json").is_file():
        return None
    entries = list(checkpoint.iterdir())
    if any(entry.name.startswith(("global_step", "pytorch_model_fsdp")) for entry in entries):
        return None
    adapter_names = ("adapter_model.safetensors", "adapter_model.bin")
    if any(entry.is_dir() and any((entry / name).is_file() for name in adapter_names) for entry in entries):
        return None
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = checkpoint / index_name
        if not index.is_file():
            continue
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
            return f"{index}: not a readable shard index ({one_line(error)})"
        missing = [shard for shard in shards if not (checkpoint / shard).is_file()]
        if missing:
            return f"{checkpoint / missing[0]} is missing (a shard listed in {index.name})"
    if not any((checkpoint / name).is_file() for name in CHECKPOINT_WEIGHTS):
        return f"{checkpoint / 'model.safetensors'} is missing (the checkpoint holds no model weights)"
    return None


def trainer_state_problem(checkpoint: Path) -> str | None:
    """Why the `trainer_state.json` of `checkpoint` is missing or unreadable (its save was cut short), or `None`."""
    state = checkpoint / TRAINER_STATE
    if not state.is_file():
        return f"{state} is missing: its save was cut short"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return f"{state} is not valid JSON ({one_line(error)}): its save was cut short"
    return None


def list_checkpoints(folder: str | Path) -> list[Path]:
    """The `checkpoint-<step>` folders of `folder`, by step (the order `transformers.trainer_utils.get_last_checkpoint`
    picks the last of); none when `folder` is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_PATTERN.fullmatch(p.name)) and p.is_dir()
    ]
    return [path for _, path in sorted(found)]


def checkpoint_to_resume(folder: str | Path) -> Path | None:
    """The checkpoint to resume a run in `folder` from: its last checkpoint when intact (`checkpoint_problem`). A
    last checkpoint without a (valid) `trainer_state.json` was cut short by a kill during its save: the last intact
    one before it is used instead, and a one-line warning says so (the trainer writes the step again). A last
    checkpoint with its state but a damaged file is an error, naming the file and the last intact checkpoint: the
    damage did not come from an interrupted save, and the user decides what to discard.

    Args:
        folder (`str` or `Path`): The run's output folder (where the trainer writes `checkpoint-<step>`).

    Returns:
        `Path` or `None`: The checkpoint, `None` when `folder` has none.

    Raises:
        `InputError`: If a `checkpoint-<step>` is a file (the trainer would fail on it when it saves, after
            training), the last checkpoint is damaged, or no checkpoint is intact.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.glob("checkpoint-*") if CHECKPOINT_PATTERN.fullmatch(p.name) and not p.is_dir())
    if files:
        raise InputError(
            f"--resume: {files[0]} is a file, not a checkpoint folder; move it out of {folder} and resume again."
        )
    checkpoints = list_checkpoints(folder)
    if not checkpoints:
        return None
    problems = {}
    for checkpoint in reversed(checkpoints):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            break
        problems[checkpoint] = problem
    else:
        checkpoint = None
    last = checkpoints[-1]
    if checkpoint == last:
        return last
    intact = (
        f"no checkpoint in {folder} is intact; start again with --overwrite true"
        if checkpoint is None
        else f"the last intact checkpoint is {checkpoint}"
    )
    if trainer_state_problem(last) is None:
        remedy = "" if checkpoint is None else f": move {last} out of {folder} and resume again to continue from it"
        raise InputError(f"--resume: {problems[last]}; {intact}{remedy}.")
    if checkpoint is None:
        raise InputError(f"--resume: {problems[last]}; {intact}.")
    logger.warning(f"--resume: {problems[last]}; resuming from {checkpoint}, the last complete checkpoint.")
    return checkpoint


def check_run_unfinished(checkpoint: str | Path, max_steps: int, num_train_epochs: float) -> None:
    """Refuse to resume from a checkpoint of a run that already reached its end. `transformers.Trainer` checks
    `global_step >= max_steps` only after a step, so resuming at `max_steps` trains one step more (and saves
    `checkpoint-<max_steps + 1>`); an epoch-based run resumed at its last epoch trains nothing and reports a loss of 0.

    Args:
        checkpoint (`str` or `Path`): The checkpoint to resume from (`checkpoint_to_resume`).
        max_steps (`int`): The run's `max_steps` (`<= 0`: the run is epoch-based).
        num_train_epochs (`float`): The run's `num_train_epochs` (used when `max_steps <= 0`).

    Raises:
        `InputError`: `"--resume: the run in X already reached max_steps=2 (checkpoint-2); raise --max_steps to train
            further."` (or the same for `num_train_epochs`).
    """
    checkpoint = Path(checkpoint)
    try:
        state = json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return  # no readable state: the trainer starts the step count again, nothing to compare
    step, epoch = state.get("global_step"), state.get("epoch")
    if max_steps > 0:
        if isinstance(step, int) and step >= max_steps:
            raise InputError(
                f"--resume: the run in {checkpoint.parent} already reached max_steps={max_steps} ({checkpoint.name});"
                " raise --max_steps to train further."
            )
    elif isinstance(epoch, (int, float)) and epoch >= num_train_epochs:
        raise InputError(
            f"--resume: the run in {checkpoint.parent} already reached num_train_epochs={num_train_epochs:g} "
            f"({checkpoint.name}); raise --num_train_epochs to train further."
        )
