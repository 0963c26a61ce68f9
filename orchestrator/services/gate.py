"""Ask the gate: would this probe be allowed, and what does every check say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.access.roles import Action, authorize
from orchestrator.context import Rio
from orchestrator.intake.registry import Person, Role

__all__ = ["CheckResult", "Explanation", "explain_probe"]


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckResult:
    """One check's verdict."""

    check: str
    ok: bool
    reason: str
    detail: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Explanation:
    """Every check's verdict for a would-be probe; ``allowed`` leaves out the run check
    (no run is active when one asks)."""

    allowed: bool
    at: datetime
    checks: tuple[CheckResult, ...]

    def __bool__(self) -> bool:
        return self.allowed

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "at": self.at.isoformat(),
            "checks": [
                {"check": c.check, "ok": c.ok, "reason": c.reason, "detail": c.detail}
                for c in self.checks
            ],
        }


async def explain_probe(
    app: Rio,
    actor: Person,
    notice_id: str,
    target: str,
    *,
    probe: str = "port",
    port: int | None = None,
    at: datetime | None = None,
    technician: str | None = None,
) -> Explanation:
    """Ask the gate the runner uses (:func:`orchestrator.app.gate_for`) about one probe.

    Args:
        app: The application.
        actor: Who asks: an officer of the notice's organ, a technician of its vendor, or
            an auditor.
        notice_id: The notice.
        target: An IP address or host name.
        probe: The probe's name.
        port: The port (a port sweep covers the policy's ports when not given).
        at: The instant to ask about (default now).
        technician: Whose launch to assume for the entrustment check; a technician asking
            is assumed themselves.

    Raises:
        AccessDeniedError: ``actor`` may not ask about this notice.
        NotFoundError: no such notice or technician.
    """
    from orchestrator.app import gate_for
    from orchestrator.gate.addresses import parse_ip
    from orchestrator.gate.decide import ProbeRequest
    from orchestrator.intake.notices import get_notice
    from orchestrator.intake.registry import get_person

    when = at or app.clock.now()
    with app.db.session() as s:
        authorize(s, actor, Action.EXPLAIN_GATE, notice_id=notice_id, now=app.clock.now())
        notice = get_notice(s, notice_id)
        if technician is not None:
            launcher: Person | None = get_person(s, technician)
        else:
            launcher = actor if actor.role is Role.TECHNICIAN else None
    try:
        ip: str | None = str(parse_ip(target))
        host = None
    except ValueError:
        ip, host = None, target
    gate = gate_for(app, notice, None, launcher=lambda: launcher)
    # A port sweep covers the policy's ports (or the one asked about); other probes one port.
    sweep: tuple[int, ...] = ()
    if probe == "port":
        policy_ports = notice.policy.probes.port.ports if notice.policy.probes.port else ()
        sweep = (port,) if port is not None else tuple(policy_ports)
    req = ProbeRequest(
        item=0,
        probe=probe,
        target=target,
        ip=ip,
        host=host,
        port=None if probe == "port" else port,
        ports=sweep,
        cost=max(1, len(sweep)),
    )
    verdicts = await gate.explain(req, at=when)
    checks = tuple(
        CheckResult(check=v.check.value, ok=v.ok, reason=v.reason, detail=v.detail)
        for v in verdicts
    )
    # Without a run, the run check cannot pass; it is shown but not counted.
    allowed = all(c.ok for c in checks if c.check != "run")
    return Explanation(allowed=allowed, at=when, checks=checks)
