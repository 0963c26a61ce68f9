"""Defect 1 of #12: the http probe against real nginx on ports 80 and 443.

httpx drops default ports (``httpx.URL("http://h:80/").port is None``), so comparing the URL's
port with the permit's refused every request on 80 and 443, and findings carried port 0.
"""

from __future__ import annotations

import pytest

from probes.base import ProbeContext
from probes.findings import load_catalogue
from probes.findings.rules import derive_findings
from probes.http import HttpProbe
from tests.integration.field.lab import DOMAIN, Lab
from tests.probes.conftest import USER_AGENT, _gate_permit

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443)])
async def test_http_probe_is_sent_to_nginx_on_its_default_port(
    field_lab: Lab, scheme: str, port: int
) -> None:
    ip = field_lab.ip("nginx-weak")
    permit = _gate_permit(
        "http",
        ip,
        {
            "port": port,
            "server_name": f"www.{DOMAIN}",
            "target": f"host:www.{DOMAIN}",
            "params": {"scheme": scheme, "paths": ["/"], "method": "GET", "timeout": 5},
        },
    )
    result = await HttpProbe().run(permit, ProbeContext(user_agent=USER_AGENT))
    assert result.outcome == "ok", result.error
    assert result.http_status == 200 and result.connections == 1
    assert result.observations and {o.port for o in result.observations} == {port}
    findings = derive_findings(result, target=permit.target, catalogue=load_catalogue())
    assert findings and {f.port for f in findings} == {port}
    assert "RIO-HTTP-BANNER-VERSION" in {f.rule for f in findings}
