"""Preference inference: a persona's direction vector from its history items, for PBA at inference time.

- `base`: `BasePreferenceInferencer`, the one interface of both inferencers (thresholds, aggregation, `infer`,
  `infer_many`, `profile_text`, `evaluate`, `calibrate`).
- `llm`: `PreferenceInferencer`, the AlignX paper's LLM annotation prompt and answer parsing.
- `learned`: `LearnedPreferenceInferencer`, a `PreferenceHead` on PersonaEncoder embeddings (torch).
- `calibration`: scoring against gold directions and the threshold searches (no torch).
- `generation`: text generation backends (transformers, vLLM, OpenAI-compatible through huggingface_hub's
  `InferenceClient`) for the LLM inferencer, `generate` and the judges.
- `calls`: the call layer every generating command goes through: the on-disk call cache, dry runs, `wrap_backend`.
- `preferences_file`: the inferred-preferences folder of `personalign infer-preferences` (write, read, match to rows).

Nothing is imported here, so that `import personalign.inference.llm` does not load torch.
"""
