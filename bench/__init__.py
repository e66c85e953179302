"""The benchmark harness of issue 5: `python -m bench.run` (or `make bench`)."""
