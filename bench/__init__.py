"""rio's benchmark harness: ``python -m bench`` (``--quick`` for the short variant).

Every figure is measured in one process run against loopback targets only (127.0.0.0/8),
repeated, and reported as a median with its min and max beside its goal; a figure that misses
its goal is shown as FAIL, never tuned away. Results go to ``bench/results/latest.json`` (plus
a timestamped copy) and ``bench/results/latest.md`` (the table the README includes).
"""

__all__: list[str] = []
