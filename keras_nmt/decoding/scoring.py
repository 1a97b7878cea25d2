"""The score of a hypothesis: GNMT's length-normalised log-probability (Wu et al. 2016, eq. 14).

`score(y) = log P(y) / lp(|y|)` with `lp(n) = ((5 + n) / 6) ** alpha`, where `|y|` counts the
emitted tokens, EOS included; alpha = 0 turns the normalisation off. Beam search ranks its
candidates by it, and every strategy returns it (`search`), so a score means the same
whatever the beam size.
"""

from __future__ import annotations

import tensorflow as tf


def length_penalty(lengths, alpha: float):
    """GNMT's `lp(n) = ((5 + n) / 6) ** alpha` for float lengths `n`."""
    return tf.pow((5.0 + lengths) / 6.0, alpha)


def normalised_score(log_probs, lengths, alpha: float):
    """`log P(y) / lp(|y|)`.

    Args:
        log_probs: float32 `log P(y)` of each hypothesis.
        lengths: int tokens emitted by each hypothesis, EOS included (shape broadcastable
            with `log_probs`).
        alpha: GNMT's alpha, >= 0.

    Returns:
        The scores, shaped as `log_probs` and `lengths` broadcast together.
    """
    return log_probs / length_penalty(tf.cast(lengths, tf.float32), alpha)
