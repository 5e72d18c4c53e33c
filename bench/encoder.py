"""PersonaEncoder.encode throughput against SentenceTransformer.encode on the same backbone and texts.

    python bench/encoder.py                                   # tiny local encoder, 4,000 synthetic excerpts
    python bench/encoder.py --model sentence-transformers/all-MiniLM-L6-v2 --texts 20000 --batch-size 64

The PersonaEncoder is loaded (or built around a plain backbone), `to_sentence_transformer()` gives the
sentence-transformers model with the same modules and weights, and both encode the same texts in alternating timed
rounds (after one warm-up each), so machine noise hits both alike. Prints texts/s per round, the medians, the maximum
embedding difference, and the ratio PersonaEncoder / SentenceTransformer of the medians and of the best rounds (the
best round is the least disturbed by other load on the machine; target >= 0.95).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="PersonaEncoder / sentence-transformers / backbone id or path (default: tiny)")
    parser.add_argument("--texts", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    options = parser.parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)

    from personalign.data.synthetic import alignx_rows
    from personalign.encoder import PersonaEncoder, alignx_excerpts

    model = options.model
    if model is None:
        from personalign.testing import tiny_encoder

        model = str(tiny_encoder(cache_dir=tempfile.mkdtemp(prefix="personalign-bench-")))
    encoder = PersonaEncoder.from_pretrained(model)
    reference = encoder.to_sentence_transformer()
    texts: list[str] = []
    rows = 0
    while len(texts) < options.texts:
        rows += 200
        texts = list(alignx_excerpts(alignx_rows(rows, seed=0), persona_column=None)["text"])
    texts = texts[: options.texts]
    print(
        f"model {model}: {len(texts):,} texts, mean {np.mean([len(t) for t in texts]):.0f} chars, batch {options.batch_size}"
    )

    def ours() -> np.ndarray:
        return encoder.encode(texts, batch_size=options.batch_size, show_progress_bar=False)

    def theirs() -> np.ndarray:
        return reference.encode(texts, batch_size=options.batch_size, show_progress_bar=False)

    difference = float(np.abs(ours() - theirs()).max())  # also the warm-up
    rates: dict[str, list[float]] = {"PersonaEncoder": [], "SentenceTransformer": []}
    for round_index in range(options.rounds):
        for name, run in (("PersonaEncoder", ours), ("SentenceTransformer", theirs))[:: 1 if round_index % 2 else -1]:
            start = time.perf_counter()
            run()
            rates[name].append(len(texts) / (time.perf_counter() - start))
        print(
            f"round {round_index}: " + ", ".join(f"{name} {values[-1]:,.0f} texts/s" for name, values in rates.items())
        )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"median texts/s: PersonaEncoder {medians['PersonaEncoder']:,.0f}, "
        f"SentenceTransformer {medians['SentenceTransformer']:,.0f}; max |difference| {difference:.2e}"
    )
    best = {name: max(values) for name, values in rates.items()}
    print(
        f"ratio PersonaEncoder / SentenceTransformer: median {medians['PersonaEncoder'] / medians['SentenceTransformer']:.3f}, "
        f"best round {best['PersonaEncoder'] / best['SentenceTransformer']:.3f} (target >= 0.95)"
    )


if __name__ == "__main__":
    main()
