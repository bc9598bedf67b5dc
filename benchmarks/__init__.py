"""photod's benchmarks: throughput, latency and memory, each against a naive pipeline in the same run.

Run `python -m benchmarks --help`. Nothing here is imported by photod itself or by its tests except
the smoke test (tests/test_benchmarks.py), which runs the benchmarks on tiny inputs.
"""
