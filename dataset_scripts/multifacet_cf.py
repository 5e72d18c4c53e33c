"""Build the counterfactual MultiFacet benchmark (configs `counterfactual`, `responses`) from Multifaceted-Collection.

    python dataset_scripts/multifacet_cf.py --source kaist-ai/Multifaceted-Collection --output data/multifacet_cf
    python dataset_scripts/multifacet_cf.py --source path/to/local/collection --output data/mf --test-instructions 50

The same as `personalign build-dataset multifacet-cf ...`; `--help` lists every option. From Python, the same build
is the `datasets` builder class `personalign.data.multifacet.MultifacetCF`:

    builder = MultifacetCF(config_name="counterfactual", source="path/to/local/collection", seed=0)
    builder.download_and_prepare()
    rows = builder.as_dataset()
"""

import sys

from personalign.cli import app, run

if __name__ == "__main__":
    sys.argv[1:1] = ["build-dataset", "multifacet-cf"]
    run(app)
