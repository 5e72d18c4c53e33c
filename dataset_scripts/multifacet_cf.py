"""Build the counterfactual MultiFacet benchmark (configs `counterfactual`, `responses`) from Multifaceted-Collection.

    python dataset_scripts/multifacet_cf.py --source kaist-ai/Multifaceted-Collection --output data/multifacet_cf
    python dataset_scripts/multifacet_cf.py --source path/to/local/collection --output data/mf --test-instructions 50

The command `personalign build-dataset multifacet-cf ...` as a script; `--help` lists every option. From Python, the
same build is the `datasets` builder class `personalign.data.multifacet.MultifacetCF`:

    builder = MultifacetCF(config_name="counterfactual", source="path/to/local/collection", seed=0)
    builder.download_and_prepare()
    rows = builder.as_dataset()
"""

import typer

from personalign.cli import run
from personalign.cli.data import build_dataset_multifacet

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich")
app.command()(build_dataset_multifacet)

if __name__ == "__main__":
    run(app)
