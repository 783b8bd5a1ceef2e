"""imgcdn's benchmarks: peers side by side, and the cache-economics simulator.

Run everything with `benchmarks/run.sh` (add `--quick` for a smoke run); it regenerates
`docs/benchmarks.md`. Nothing here is imported by the product packages.
"""
