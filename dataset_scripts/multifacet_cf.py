"""Build the counterfactual MultiFacet benchmark (configs `counterfactual`, `responses`) from Multifaceted-Collection.

    python dataset_scripts/multifacet_cf.py --source kaist-ai/Multifaceted-Collection --output data/multifacet_cf
    python dataset_scripts/multifacet_cf.py --source path/to/local/collection --output data/mf --test-instructions 50

The same build as `personalign build-dataset multifacet-cf ...` (this script calls that command's function with the
options that apply to multifacet-cf; `--help` lists them). From Python, the same build is the `datasets` builder
class `personalign.data.multifacet.MultifacetCF`:

    builder = MultifacetCF(config_name="counterfactual", source="path/to/local/collection", seed=0)
    builder.download_and_prepare()
    rows = builder.as_dataset()
"""

from pathlib import Path
from typing import Annotated

import typer

from personalign.cli import (
    AllowMissingDimensions,
    ConfigNames,
    HistorySize,
    Match,
    Overwrite,
    Seed,
    TestInstructions,
    build_dataset,
    run,
)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")


@app.command()
def multifacet_cf(
    source: Annotated[str, typer.Option(help="Hub dataset id, or a local folder / file of Multifaceted-Collection.")],
    output: Annotated[Path, typer.Option(help="Output folder (parquet shards per config + README.md card).")],
    config: ConfigNames = None,
    seed: Seed = 0,
    history_size: HistorySize = 10,
    match: Match = "preference",
    test_instructions: TestInstructions = None,
    allow_missing_dimensions: AllowMissingDimensions = False,
    overwrite: Overwrite = False,
) -> None:
    """Build the counterfactual MultiFacet benchmark (configs [bold]counterfactual[/bold] and
    [bold]responses[/bold]) into a folder that [bold]datasets.load_dataset(folder, config)[/bold] reads: the same
    build as [bold]personalign build-dataset multifacet-cf[/bold]."""
    build_dataset(
        "multifacet-cf",
        source=source,
        output=output,
        config=config,
        seed=seed,
        history_size=history_size,
        match=match,
        test_instructions=test_instructions,
        allow_missing_dimensions=allow_missing_dimensions,
        overwrite=overwrite,
    )


if __name__ == "__main__":
    run(app)
