"""A probe result as JSON, for the trip back from a worker (the result backend)."""

from __future__ import annotations

from typing import Any

from probes.base import Observation, ProbeResult

__all__ = ["result_from_json", "result_to_json"]


def result_to_json(r: ProbeResult) -> dict[str, Any]:
    return {
        "probe": r.probe,
        "ip": r.ip,
        "outcome": r.outcome,
        "observations": [
            {"key": o.key, "value": o.value, "port": o.port, "evidence": o.evidence}
            for o in r.observations
        ],
        "error": r.error,
        "started": r.started,
        "elapsed": r.elapsed,
        "connections": r.connections,
        "latency": r.latency,
        "http_status": r.http_status,
        "retry_after": r.retry_after,
        "connection_times": list(r.connection_times),
    }


def result_from_json(d: dict[str, Any]) -> ProbeResult:
    return ProbeResult(
        probe=d["probe"],
        ip=d["ip"],
        outcome=d["outcome"],
        observations=tuple(
            Observation(key=o["key"], value=o["value"], port=o["port"], evidence=o["evidence"])
            for o in d["observations"]
        ),
        error=d["error"],
        started=float(d["started"]),
        elapsed=float(d["elapsed"]),
        connections=int(d["connections"]),
        latency=d["latency"],
        http_status=d["http_status"],
        retry_after=d["retry_after"],
        connection_times=tuple(float(t) for t in d["connection_times"]),
    )
