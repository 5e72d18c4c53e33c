"""The `personalign` command line (Typer, rich help): one app assembled from one module per command group.

- `data`: `synthetic alignx|multifaceted`, `build-dataset alignx|multifacet-cf`, `push-dataset alignx|multifacet-cf`
- `train`: `train METHOD` for every method of the registry (`personalign.methods`)
- `eval`: `eval policy|encoder`
- `generate`: responses under each row's persona prompt, for the judges
- `infer`: `infer-preferences` (preferences inferred from each row's history, for PBA)
- `judge`: the papers' judged evaluations of generated responses (`judge --protocol ...`)
- `hub`: `push-model`
- `reward`: `rejection-sample`
- `space`, `demo`

`main()` runs the app behind the typed error map of `error_map`. Start-up imports only typer, rich and the method
registry: each command imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from . import data, demo, error_map, generate, hub, infer, judge, reward, space, train
from .eval import eval_app

app = typer.Typer(
    name="personalign",
    help="User-level (personalized) alignment of LLMs: persona data, encoders, trainers, metrics, Hub publishing.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"personalign {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """User-level (personalized) alignment of LLMs, Hugging Face-native."""


app.add_typer(data.synthetic_app, name="synthetic")
app.add_typer(data.build_app, name="build-dataset")
app.add_typer(data.push_app, name="push-dataset")
app.command("train", cls=train.TrainCommand, context_settings=train.CONTEXT_SETTINGS)(train.train_command)
app.add_typer(eval_app, name="eval")
app.command("generate")(generate.generate_command)
app.command("infer-preferences")(infer.infer_preferences_command)
app.command("judge")(judge.judge_command)
app.command("push-model")(hub.push_model_command)
app.command("rejection-sample")(reward.rejection_sample_command)
app.command("space")(space.space_command)
app.command("demo")(demo.demo_command)


def run(typer_app: typer.Typer) -> None:
    """Run a Typer app behind the typed error map: a user error ends with one `error:` line and exit code 1, Ctrl-C
    with one line and exit code 130, SIGTERM with one line and exit code 143 (both after the staging folders of the
    outputs in progress were removed; a command that used the call cache adds that the same command resumes), anything else with the internal-error line (`PERSONALIGN_DEBUG=1` adds the
    traceback). Usage errors keep Typer's own message and exit code 2.

    Args:
        typer_app (`typer.Typer`): The app (`app`, or a command group such as `data.synthetic_app`).
    """
    before = error_map.caches_in_use()  # an interrupt reports the call caches of this command only
    try:
        with error_map.terminate_on_sigterm():
            typer_app()
    except error_map.Terminated:
        sys.exit(error_map.report_terminated(before))
    except KeyboardInterrupt:
        sys.exit(error_map.report_interrupt(before))
    except SystemExit as done:
        # Typer turns Ctrl-C inside a command into exit code 130 without a word; say why the command stopped.
        if done.code == error_map.INTERRUPTED_EXIT_CODE:
            error_map.report_interrupt(before)
        raise
    except Exception as error:
        sys.exit(error_map.report(error))


def main() -> None:
    """The `personalign` console script."""
    run(app)


if __name__ == "__main__":
    main()
