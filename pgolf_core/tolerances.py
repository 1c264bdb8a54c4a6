"""Every numeric tolerance of the evaluator, the checks and the coder, in one place.

A tolerance decides what is legal: the loop's guards, the contract checks (``pgolf_core.testing``),
the audit, the spot check and the compressor all read theirs from here, so a rule cannot be looser
in one path than in another by accident. Each value says why it is what it is. The modules that
used to define them re-export them under the same names (``loop.MASS_TOLERANCE``,
``testing.CAUSAL_TOLERANCE``, ...).

This module imports nothing from the package, so any module can import it first.
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- probabilities (C2)

# A log-probability above this is a probability above 1, which no normalized row can give. Not 0:
# log(sum) of a float64 row that sums to 1 can round to a few ulps above 0.
LOGP_TOLERANCE = 1e-9

# |sum of a row - 1| allowed of an expert's or the mixture's row. A float32 softmax over 8,192 entries
# sums to 1 within about 1e-7; 1e-6 leaves room for that and stays far below any real leak of mass
# (one token's worth of a row is ~1e-4 at V = 8192).
MASS_TOLERANCE = 1e-6

# |mix() - log(mixture row at the target)| allowed under strict scoring, in nats: the two are computed
# by different expressions (log-sum-exp against a weighted sum), which agree to ~1e-12 in float64,
# and to ~1e-7 when the inputs are float32 rows.
MIX_AGREEMENT_TOLERANCE = 1e-6

# The range coder refuses a row further than this from summing to 1: such a row is almost surely not
# a probability row (logits, counts, a float16 softmax) and must not be silently renormalized; a
# float32 softmax (off by ~1e-6) passes.
SUM_TOLERANCE = 1e-3

# ----------------------------------------------------------------------------- contract checks

# |score() - log distributions()[target]| allowed, in nats: an expert may compute its score and its
# row along different float paths (a float32 log-softmax against a float64 log of a float32 row).
CONSISTENCY_TOLERANCE = 1e-5

# Predictions before a change of the future must not move by more than this (nats or probability
# mass). The same code on the same past gives the same floats, so any honest difference is 0; the
# margin only absorbs reductions whose summation order depends on the span's length.
CAUSAL_TOLERANCE = 1e-9

# A legal sequential predictor beats T*log2(V) bits on uniform random tokens by s bits with
# probability below 2^-s (Markov/Barron); at 20 bits a false alarm has odds below one in a million.
HYPERCOMPRESSION_SLACK_BITS = 20.0

# |sparse_rows() entry - distributions() entry| allowed: both describe the same float64 values; the
# background's base + slope * count is one multiply-add away from the dense row's entry.
SPARSE_TOLERANCE = 1e-12

# mix() over a span sums its weight updates in another order than a step kernel does one target at a
# time, which moves float64 weights by a few ulps over a few hundred targets.
MIXER_KERNEL_TOLERANCE = 1e-10

# A step kernel computes predict()'s rows; it may round differently (numba's exp and log against
# numpy's), by a few ulps of each entry.
KERNEL_TOLERANCE = 1e-12

# predict()'s target-by-target rows against distributions()' rows of whole spans: a network scores a
# span in one batched forward and a single target alone, and float32 matmuls of different shapes
# differ by ~1e-7 per entry. Bitwise agreement is required only between two predict() runs.
DECODE_TOLERANCE = 1e-6

# ----------------------------------------------------------------------------- proofs and data

# Float rounding allowed between an evaluation's bits-per-byte sums and the decoder's recount of the
# same file: the two add the same float64 terms in different orders (per chunk against per target).
AGREEMENT_SLACK = 1e-6

# Relative difference allowed between a stream's byte count and the known count of its tokenizer's
# validation split: far below the 1-20% counting mistakes seen in the field, above the few thousand
# bytes the official cut's tail of at most 2,047 targets can hold.
BYTES_TOLERANCE = 0.001

# The overlap check verifies candidate document pairs whose signature estimate of Jaccard similarity
# is at most this far below the threshold: a 128-permutation MinHash estimate has a standard error
# of about 0.04 near the threshold, so 0.15 (almost four of them) misses almost no true pair.
ESTIMATE_SLACK = 0.15

# Seconds by which a file installed with its distribution may predate the distribution's RECORD:
# pip writes the files first and the RECORD last, seconds apart on a slow disk.
RECORD_SLACK_S = 5.0
