"""`evaluate` modules shipped with personalign. Each lives in a folder of its name (`<name>/<name>.py` plus its metric
card, `README.md`) and loads with `evaluate.load(<folder>)`; see `personalign.load_metric`."""
