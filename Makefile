# `make demo` installs and scores the built-in demo; `make test` installs and runs the test suite.
# Torch is pinned to the CPU build first so that pip never pulls a multi-GB CUDA wheel.
PY ?= python3
PIP ?= $(PY) -m pip

.PHONY: install install-test demo test bench

install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e .

install-test: install
	$(PIP) install -q -e ".[test]" -e examples/pgolf-recency -e examples/pgolf-nanogpt

demo: install
	pgolf-core eval --experts neural,bigram,trigram

test: install-test
	$(PY) -m pytest -q

bench:
	$(PY) benchmarks/bench_ngram.py
	$(PY) benchmarks/bench_mixers.py
	$(PY) benchmarks/bench_neural.py
