"""Small measurement helpers shared by the CLI, benchmarks and tests."""

from .counting import count_macs, count_params

__all__ = ["count_macs", "count_params"]
