"""One training script per method (as TRL's `trl/scripts/<method>.py`), each named by its registry entry in
`personalign.methods`: its script arguments (`utils.ScriptArguments`, or a subclass with the method's own fields),
`make_parser()` (a `trl.TrlParser` over the script arguments, the method's config and `trl.ModelConfig`) and
`main(script_args, training_args, model_args)`, which trains, writes the output folder and returns the run record.

`personalign train NAME` parses with the script's parser and runs its `main`; Python callers (the demo) build the
three dataclasses and call `main` directly. What every script shares is in `utils`.
"""
