"""Benchmarks: parameters, MACs, latency and memory, always as ratios to a reference measured in the same run."""

from .timing import forward_fn, time_interleaved

__all__ = ["forward_fn", "time_interleaved"]
