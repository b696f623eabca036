"""Benchmarks of the suite against its speed goals (issue #6), run by `make bench`.

Each benchmark measures our figures and a reference side by side in one run, prints them and,
last, one line with the ratio against each goal; results go to bench/results/ (not versioned)
and are recorded in docs/performance.md.
"""
