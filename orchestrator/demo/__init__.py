"""The loopback target farm that ``rio demo`` inspects and the benchmarks drive.

Usage::

    with Farm(FarmSpec(count=4, lifetime=60)) as farm:
        farm.targets        # ('127.0.10.1', ..., '127.0.10.4')
        farm.counters()     # per target: http/https requests, tcp accepts, 429s
"""

from __future__ import annotations

from orchestrator.demo.farm import COUNTER_KEYS, Farm, FarmSpec

__all__ = ["COUNTER_KEYS", "Farm", "FarmSpec"]
