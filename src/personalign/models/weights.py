"""Weight files and training checkpoints, checked before anything loads them, so that a damaged or pickled file is
one line naming it rather than a library's traceback. Nothing here unpickles: a safetensors file is checked by its
header (`safetensors.safe_open`, which also checks that the file is as long as the header says), a torch-saved file
by its zip directory and the globals its pickle names (scanned, not run).

- `check_model_folder`: a local model folder's weights load (safetensors only; pickled-only folders are refused
  with how to convert them).
- `checkpoint_problem`: what makes a trainer checkpoint unusable, cheaply (`trainer_state.json`, written last by
  `Trainer._save_checkpoint`, present and valid; every safetensors header readable; every file the trainer unpickles
  on resume a whole torch archive naming only what a weights-only load accepts).
- `checkpoint_to_resume`: the checkpoint `--resume` continues from: the last one, or the last complete one when the
  last was cut short by a kill during its save (said in one line).
"""

from __future__ import annotations

import json
import logging
import re
import zipfile
from fnmatch import fnmatch
from pathlib import Path

from safetensors import SafetensorError, safe_open

from ..errors import InputError

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


def check_model_folder(name: str | Path, kind: str = "model") -> None:
    """Check a local model folder before it is loaded: every safetensors file in it and in its immediate subfolders
    (a sentence-transformers model's modules, DPORE's `projection_head/`) loads, and no folder holds pickled weights
    only (`PICKLED_WEIGHTS`, which personalign never unpickles). Checkpoints (`checkpoint-*`) and hidden folders are
    not looked at. A Hub id or a missing path passes (`io.require_local_path` names a missing one).

    Args:
        name (`str` or `Path`): The folder (or a Hub id).
        kind (`str`, *optional*, defaults to `"model"`): What it is, for the message.

    Raises:
        `InputError`: `"<kind> <file>: does not load (<reason>)."`, or, for a folder of pickled weights only, one
            line saying so and how to convert them.
    """
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return
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
    - every safetensors file, at any depth, loads (`safetensors_problem`);
    - every `torch.save` file the trainer loads on resume (`RESUME_PICKLES`: optimizer, scheduler, RNG state) is a
      whole torch archive holding what a weights-only load accepts (`torch_file_problem`).

    Args:
        checkpoint (`str` or `Path`): A `checkpoint-<step>` folder.

    Returns:
        `str` or `None`: `"<file>: <reason>"` for the first problem found.
    """
    checkpoint = Path(checkpoint)
    problem = trainer_state_problem(checkpoint)
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
        `InputError`: If the last checkpoint is damaged, or no checkpoint is intact.
    """
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
