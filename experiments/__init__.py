"""Experiments: cross-check, planning reports, sweep analysis and benchmarks (scripts and apps)."""
