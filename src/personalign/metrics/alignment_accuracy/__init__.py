"""The `alignment_accuracy` `evaluate` module (`alignment_accuracy.py`) and its metric card (`README.md`).

`evaluate.load` copies the script into its modules cache and imports it from there; import
`personalign.evaluation` for the functions it wraps."""
