"""Latency of a SavedModel export in a clean process: only TensorFlow and tensorflow-text.

    python benchmarks/serving_latency.py EXPORT_DIR SENTENCES.json

Prints one JSON object: load time, p50/p95 latency of `serving_default` for one sentence at a
time and for batches of 64, throughput at batch 64 of `serving_default` and `translate_greedy`
(with the batch-64 translations, for counting target tokens), and peak resident memory. This
is what a TF Serving process pays, minus the server itself.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)


def percentiles(seconds: list[float]) -> dict:
    milliseconds = np.array(seconds) * 1000
    return {
        "p50": float(np.percentile(milliseconds, 50)),
        "p95": float(np.percentile(milliseconds, 95)),
    }


def main(path: str, sentences_file: str) -> dict:
    with open(sentences_file, encoding="utf-8") as handle:
        sentences = json.load(handle)
    start = time.perf_counter()
    model = tf.saved_model.load(path)
    load = time.perf_counter() - start
    result = {"load_s": load}
    for name in ("serving_default", "translate_greedy"):
        function = model.signatures[name]
        function(text=tf.constant(sentences[:64]))  # warm-up
        single = []
        for sentence in sentences[:100]:
            start = time.perf_counter()
            function(text=tf.constant([sentence]))
            single.append(time.perf_counter() - start)
        batches, translations = [], []
        for begin in range(0, len(sentences), 64):
            start = time.perf_counter()
            outputs = function(text=tf.constant(sentences[begin : begin + 64]))
            batches.append(time.perf_counter() - start)
            translations += [t.decode("utf-8") for t in outputs["translation"].numpy()]
        result[name] = {
            "b1_ms": percentiles(single),
            "b64_ms": percentiles(batches),
            "b64_sent_per_s": len(sentences) / sum(batches),
            "b64_seconds": sum(batches),
            "translations": translations,
        }
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
