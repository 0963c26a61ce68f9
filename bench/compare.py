"""``sudo .venv/bin/python -m bench.compare``: rio vs nmap NSE, testssl.sh and sslyze, one lab.

One run starts the field lab's TLS, SSH, HTTP and SMTP servers (real Debian nginx, openssl
s_server, OpenSSH, Exim on loopback standard ports, flaws planted; see
``tests/integration/field/lab.py``), then points each tool at the *same* servers in turn:

* **rio**: the tls (``check_legacy``, ``enumerate`` with 24 handshakes, ``inspect`` with the lab's
  CA bundle), ssh (``auth_methods``), http and smtp probes, each permit issued by rio's real gate,
  all probes of the run concurrently (as a run does); findings derived from the catalogue.
* **nmap**: one ``nmap -Pn -n -sV --script "safe and (ssl-enum-ciphers or ssl-cert or
  ssl-dh-params or ssh2-enum-algos or http-headers or smtp-commands)"`` over every address.
* **testssl.sh** (Debian's ``testssl``): ``-p -s -f -S -R -h`` (protocols, cipher categories,
  forward secrecy and DH groups, certificate and chain, renegotiation, headers) with
  ``--add-ca`` the lab's bundle, one TLS endpoint after the other.
* **sslyze**: one invocation over every TLS endpoint with ``--certinfo_ca_file`` the bundle and
  ``--mozilla_config intermediate``.

Each planted flaw the comparison covers (TLS, SSH, HTTP headers, SMTP) is then looked up in each
tool's output with the matchers below: one predicate per catalogue rule, written against what the
tool prints for that fault (the raw outputs are kept under ``bench/results/compare/`` to check).
A tool is credited only for the flaw at the endpoint where it was planted. False positives are
counted on the sound servers (``nginx-sound``, ``ssh-sound``, ``smtp-sound``): any rio finding
there, or any tool line the same matchers would count as a finding there.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["main"]

RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = (
    "nginx-weak", "nginx-sound", "tls-expired", "tls-not-yet-valid", "tls-expiring",
    "tls-weak-key", "tls-sha1", "tls-legacy", "tls-wrong-name", "tls-weak-suites",
    "tls-incomplete-chain", "tls-unknown-ca", "tls-weak-dh", "ssh", "ssh-sound", "smtp",
    "smtp-sound",
)  # fmt: skip
SOUND = ("nginx-sound", "ssh-sound", "smtp-sound")
_COVERED = re.compile(r"^RIO-(TLS|SSH|SMTP)-|^RIO-HTTP-(HSTS|CSP|XCTO|XFO|COOKIE|BANNER|NO-HTTPS)")
_TOOL_TIMEOUT = 900


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    server: str
    ip: str
    port: int
    kind: str
    """``tls``, ``ssh``, ``http``, ``smtp``"""
    name: str | None = None


def _endpoints(lab: Any) -> list[Endpoint]:
    out: list[Endpoint] = []
    for server in SERVERS:
        ip = lab.ip(server)
        names = {"nginx-weak": "www.lab.test", "nginx-sound": "secure.lab.test",
                 "tls-wrong-name": "mismatch.lab.test"}  # fmt: skip
        name = names.get(server)
        if server.startswith(("nginx", "tls-")):
            out.append(Endpoint(server=server, ip=ip, port=443, kind="tls", name=name))
        if server.startswith("nginx"):
            out.append(Endpoint(server=server, ip=ip, port=80, kind="http", name=name))
            out.append(Endpoint(server=server, ip=ip, port=443, kind="https", name=name))
        if server.startswith("ssh"):
            out.append(Endpoint(server=server, ip=ip, port=22, kind="ssh"))
        if server.startswith("smtp"):
            out.append(Endpoint(server=server, ip=ip, port=25, kind="smtp"))
        if server == "smtp":
            out.append(Endpoint(server=server, ip=ip, port=465, kind="tls"))
    return out


# -- rio --------------------------------------------------------------------------------------


def _rio(lab: Any, endpoints: list[Endpoint], out: Path) -> tuple[float, list[dict[str, Any]]]:
    # The probes and the real gate (tests' own permit helper: a scope naming the address, a
    # policy allowing exactly these parameters). Imported late: bench must not need tests/.
    conftest: Any = importlib.import_module("tests.probes.conftest")
    findings_mod: Any = importlib.import_module("probes.findings")
    registry: Any = importlib.import_module("probes.registry")
    base: Any = importlib.import_module("probes.base")
    catalogue = findings_mod.load_catalogue()
    versions = findings_mod.load_versions()
    jobs: list[tuple[Endpoint, str, dict[str, Any]]] = []
    for e in endpoints:
        if e.kind == "tls":
            params: dict[str, Any] = {"timeout": 5, "check_legacy": True, "enumerate": True}
            params.update(max_handshakes=24)
            params.update(inspect=True, ca_bundle=str(lab.ca_bundle))
            jobs.append((e, "tls", params))
        elif e.kind in ("http", "https"):
            params = {"scheme": e.kind, "paths": ["/"], "method": "GET", "timeout": 5}
            jobs.append((e, "http", params))
        elif e.kind == "ssh":
            jobs.append((e, "ssh", {"timeout": 10, "auth_methods": True}))
        elif e.kind == "smtp":
            jobs.append((e, "smtp", {"timeout": 5}))
    permits = [
        conftest._gate_permit(
            probe, e.ip, {"port": e.port, "params": params, "server_name": e.name, "max_rate": 1000}
        )
        for e, probe, params in jobs
    ]
    ctx = base.ProbeContext(user_agent="rio-bench (+field lab comparison)")

    async def run_all() -> list[Any]:
        return list(
            await asyncio.gather(*(registry.probe_class(p.probe)().run(p, ctx) for p in permits))
        )

    t0 = time.perf_counter()
    results = asyncio.run(run_all())
    elapsed = time.perf_counter() - t0
    found: list[dict[str, Any]] = []
    for (e, _, _), result in zip(jobs, results, strict=True):
        for f in findings_mod.derive_findings(
            result, target=f"ip:{e.ip}", catalogue=catalogue, versions=versions,
            server_name=e.name, port=e.port,
        ):  # fmt: skip
            found.append({"rule": f.rule, "ip": e.ip, "port": e.port, "server": e.server})
    (out / "rio.json").write_text(json.dumps(found, indent=1))
    return elapsed, found


# -- the other tools --------------------------------------------------------------------------


def _run(argv: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False)
    log.write_text(f"$ {' '.join(argv)}\n# exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t0


def _nmap(endpoints: list[Endpoint], out: Path) -> float:
    ips = sorted({e.ip for e in endpoints})
    scripts = ("safe and (ssl-enum-ciphers or ssl-cert or ssl-dh-params or ssh2-enum-algos "
               "or http-headers or smtp-commands)")  # fmt: skip
    argv = ["nmap", "-Pn", "-n", "-sV", "--script", scripts, "-p", "22,25,80,443,465",
            "-oX", str(out / "nmap.xml"), *ips]  # fmt: skip
    return _run(argv, out / "nmap.log")


def _testssl(lab: Any, endpoints: list[Endpoint], out: Path) -> float:
    total = 0.0
    for e in endpoints:
        if e.kind != "tls":
            continue
        target = f"{e.name}:{e.port}" if e.name else f"{e.ip}:{e.port}"
        json_file = out / f"testssl-{e.ip}-{e.port}.json"
        json_file.unlink(missing_ok=True)
        argv = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--ip", e.ip,
                "--add-ca", str(lab.ca_bundle), "--jsonfile", str(json_file),
                "-p", "-s", "-f", "-S", "-R", "-h", target]  # fmt: skip
        total += _run(argv, out / f"testssl-{e.ip}-{e.port}.log")
    return total


def _sslyze(lab: Any, endpoints: list[Endpoint], out: Path) -> float:
    targets = [
        f"{e.name}:{e.port}{{{e.ip}}}" if e.name else f"{e.ip}:{e.port}"
        for e in endpoints
        if e.kind == "tls"
    ]
    sslyze = shutil.which("sslyze") or str(Path(sys.executable).with_name("sslyze"))
    argv = [sslyze, "--json_out", str(out / "sslyze.json"), "--certinfo_ca_file",
            str(lab.ca_bundle), "--mozilla_config", "intermediate", *targets]  # fmt: skip
    return _run(argv, out / "sslyze.log")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--results", type=Path, default=RESULTS / "compare")
    parser.add_argument("--tools", nargs="+", default=["rio", "nmap", "testssl", "sslyze"])
    parser.add_argument(
        "--rescore", action="store_true", help="score the outputs already in --results again"
    )
    args = parser.parse_args(argv)
    lab_mod: Any = importlib.import_module("tests.integration.field.lab")
    servers = [lab_mod.server_named(n) for n in SERVERS]
    if args.rescore:
        return _rescore(lab_mod, args.results)
    why = lab_mod.unavailable(servers)
    if why is not None:
        print(why, file=sys.stderr)
        return 2
    out: Path = args.results
    out.mkdir(parents=True, exist_ok=True)
    block = lab_mod.claim_block()
    times: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as d, lab_mod.Lab(block, Path(d), servers) as lab:
            endpoints = _endpoints(lab)
            rio_found: list[dict[str, Any]] = []
            for tool in args.tools:
                if tool == "rio":
                    times["rio"], rio_found = _rio(lab, endpoints, out)
                elif tool == "nmap":
                    times["nmap"] = _nmap(endpoints, out)
                elif tool == "testssl":
                    times["testssl"] = _testssl(lab, endpoints, out)
                elif tool == "sslyze":
                    times["sslyze"] = _sslyze(lab, endpoints, out)
            flaws = [f for f in lab.flaws() if f.rule and _COVERED.match(f.rule)]
            table = _score(lab, flaws, out, rio_found, list(times))
    finally:
        block.release()
    report = {"seconds": times, "block": block.prefix, **table}
    (out / "summary.json").write_text(json.dumps(report, indent=1))
    _print(report)
    return 0


# -- scoring ----------------------------------------------------------------------------------


class _Addresses:
    """The lab's addresses and flaws from a finished run's block (servers sit at fixed hosts)."""

    def __init__(self, lab_mod: Any, prefix: str) -> None:
        self._lab = lab_mod
        self.prefix = prefix

    def ip(self, server: str) -> str:
        return f"{self.prefix}.{self._lab.server_named(server).host}"

    def flaws(self) -> list[Any]:
        return [f for f in self._lab.FLAWS if f.server in SERVERS]


def _rescore(lab_mod: Any, out: Path) -> int:
    previous = json.loads((out / "summary.json").read_text())
    lab = _Addresses(lab_mod, previous["block"])
    rio_found = json.loads((out / "rio.json").read_text())
    flaws = [f for f in lab.flaws() if f.rule and _COVERED.match(f.rule)]
    report = {"seconds": previous["seconds"], "block": lab.prefix,
              **_score(lab, flaws, out, rio_found, list(previous["seconds"]))}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(report, indent=1))
    _print(report)
    return 0


Lines = dict[tuple[str, int], list[str]]


def _nmap_lines(out: Path) -> Lines:
    lines: Lines = {}
    path = out / "nmap.xml"
    if not path.exists():
        return lines
    root = ET.parse(path).getroot()
    for host in root.iter("host"):
        addr = host.find("address")
        ip = addr.get("addr", "") if addr is not None else ""
        for port in host.iter("port"):
            key = (ip, int(port.get("portid", "0")))
            bucket = lines.setdefault(key, [])
            service = port.find("service")
            if service is not None:
                bucket.append("service " + " ".join(f"{k}={v}" for k, v in service.attrib.items()))
            for script in port.iter("script"):
                bucket += [
                    f"{script.get('id')}: {ln}" for ln in (script.get("output") or "").splitlines()
                ]
    return lines


def _testssl_lines(out: Path) -> Lines:
    lines: Lines = {}
    for path in out.glob("testssl-*.json"):
        try:
            entries = json.loads(path.read_text() or "[]")
        except json.JSONDecodeError:
            continue
        for e in entries:
            ip = str(e.get("ip", "")).split("/")[-1]
            key = (ip, int(e.get("port", 0) or 0))
            lines.setdefault(key, []).append(
                f"{e.get('id')} [{e.get('severity')}] {e.get('finding')}"
            )
    return lines


def _sslyze_lines(out: Path) -> Lines:
    lines: Lines = {}
    path = out / "sslyze.json"
    if not path.exists():
        return lines
    doc = json.loads(path.read_text())
    for result in doc.get("server_scan_results", []):
        loc = result.get("server_location", {})
        key = (str(loc.get("ip_address")), int(loc.get("port", 0)))
        flat: list[str] = []
        _flatten("", result.get("scan_result") or {}, flat)
        lines[key] = flat
    for item in doc.get("mozilla_config_checks", []) or []:
        _flatten("mozilla", item, lines.setdefault(("mozilla", 0), []))
    return lines


def _flatten(prefix: str, value: Any, out: list[str]) -> None:
    if len(out) > 200_000:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value[:500]):
            _flatten(f"{prefix}[{i}]", v, out)
    else:
        out.append(f"{prefix}={value}")


Match = Callable[[list[str]], bool]


def _any(pattern: str) -> Match:
    rx = re.compile(pattern, re.I)
    return lambda lines: any(rx.search(line) for line in lines)


def _all(*patterns: str) -> Match:
    matches = [_any(p) for p in patterns]
    return lambda lines: all(m(lines) for m in matches)


def _none(present: str, absent: str) -> Match:
    """``present`` is stated (the check ran) and ``absent`` is not (nothing was accepted)."""
    yes, no = _any(present), _any(absent)
    return lambda lines: yes(lines) and not no(lines)


# The criterion: a tool is credited when its output *states* the fault: flags it (a severity,
# VULNERABLE, a failed validation) or names the faulty value itself (a 1024-bit key, a SHA-1
# signature, TLS 1.0 listed as accepted, diffie-hellman-group1-sha1 listed, a version in a
# banner). Output a reader must compute a verdict from (a not-after date, subject == issuer, a
# header that is absent from a list) is not credited.
_SSH_NMAP = {
    "RIO-SSH-LEGACY-KEX": _any(r"^ssh2-enum-algos: +diffie-hellman-group1-sha1$"),
    "RIO-SSH-LEGACY-HOSTKEY": _any(r"^ssh2-enum-algos: +ssh-rsa$"),
    "RIO-SSH-LEGACY-CIPHER": _any(r"^ssh2-enum-algos: +(aes128-cbc|3des-cbc)$"),
    "RIO-SSH-LEGACY-MAC": _any(r"^ssh2-enum-algos: +hmac-md5$"),
    "RIO-SSH-BANNER-OS": _any(r"^service .*extrainfo=Debian"),
}
_VALID = r"deployments\[0\]\.path_validation_results\[\d+\]\.validation_error="
MATCHERS: dict[str, dict[str, Match]] = {
    "nmap": {
        **_SSH_NMAP,
        "RIO-TLS-WEAK-KEY": _any(r"^ssl-cert: Public Key bits: (512|768|1024)$"),
        "RIO-TLS-WEAK-SIGNATURE": _any(r"^ssl-cert: Signature Algorithm: sha1"),
        "RIO-TLS-WEAK-DH": _any(r"^ssl-dh-params: +State: (LIKELY )?VULNERABLE"),
        "RIO-TLS-LEGACY-1-0": _any(r"^ssl-enum-ciphers: +TLSv1\.0:"),
        "RIO-TLS-LEGACY-1-1": _any(r"^ssl-enum-ciphers: +TLSv1\.1:"),
        "RIO-HTTP-BANNER-VERSION": _any(r"^http-server-header: nginx/\d"),
        "RIO-SMTP-BANNER-VERSION": _any(r"^service .*product=Exim.*version=\d"),
    },
    "testssl": {
        "RIO-TLS-SELF-SIGNED": _any(r"^cert_chain_of_trust .*self signed\)"),
        "RIO-TLS-UNTRUSTED-ISSUER": _any(
            r"^cert_chain_of_trust \[(CRITICAL|HIGH)\] failed \((?!self signed\))"
        ),
        "RIO-TLS-CHAIN-INCOMPLETE": _any(r"^cert_chain_of_trust .*(incomplete|chain)"),
        "RIO-TLS-EXPIRED": _any(r"^cert_expirationStatus \[(CRITICAL|HIGH)\] expired"),
        "RIO-TLS-NOT-YET-VALID": _any(r"^cert_(notBefore|expirationStatus) .*not yet valid"),
        "RIO-TLS-EXPIRING": _any(r"^cert_expirationStatus \[(MEDIUM|HIGH|LOW)\] expires"),
        "RIO-TLS-WEAK-KEY": _any(r"^cert_keySize \[(LOW|MEDIUM|HIGH|CRITICAL)\]"),
        "RIO-TLS-WEAK-SIGNATURE": _any(r"^cert_signatureAlgorithm \[(LOW|MEDIUM|HIGH|CRITICAL)\]"),
        "RIO-TLS-NAME-MISMATCH": _any(r"^cert_trust \[(LOW|MEDIUM|HIGH|CRITICAL|WARN)\]"),
        "RIO-TLS-LEGACY-1-0": _any(r"^TLS1 \[\w+\] offered"),
        "RIO-TLS-LEGACY-1-1": _any(r"^TLS1_1 \[\w+\] offered"),
        "RIO-TLS-NULL-OR-ANON-SUITE": _any(r"^cipherlist_(aNULL|NULL) \[\w+\] offered"),
        "RIO-TLS-CBC-SHA1": _any(r"^cipherlist_AVERAGE \[\w+\] offered"),
        "RIO-TLS-NO-FORWARD-SECRECY": _any(r"^(PFS|FS) \[(LOW|MEDIUM|HIGH|CRITICAL)\]"),
        "RIO-TLS-NO-TLS13": _any(r"^TLS1_3 \[\w+\] not offered"),
        "RIO-TLS-WEAK-DH": _any(
            r"^(DH_groups|PFS_DH\w*|FS_DH\w*|LOGJAM\w*) \[(LOW|MEDIUM|HIGH|CRITICAL)\]"
        ),
        "RIO-TLS-INSECURE-RENEGOTIATION": _any(r"^secure_renego \[(LOW|MEDIUM|HIGH|CRITICAL)\]"),
        "RIO-TLS-OCSP-NOT-STAPLED": _any(r"^OCSP_stapling \[\w+\] not offered"),
        "RIO-HTTP-HSTS-MISSING": _any(r"^HSTS \[\w+\] not offered"),
        "RIO-HTTP-BANNER-VERSION": _any(r"^banner_server \[\w+\] \S+/\d"),
        "RIO-HTTP-COOKIE-NOT-SECURE": _any(r"^cookie_secure \[\w+\] 0/"),
        "RIO-HTTP-COOKIE-NOT-HTTPONLY": _any(r"^cookie_httponly \[\w+\] 0/"),
        "RIO-HTTP-CSP-MISSING": _any(r"^security_headers \[(LOW|MEDIUM|HIGH)\] --"),
        "RIO-HTTP-XCTO-MISSING": _any(r"^security_headers \[(LOW|MEDIUM|HIGH)\] --"),
        "RIO-HTTP-XFO-MISSING": _any(r"^security_headers \[(LOW|MEDIUM|HIGH)\] --"),
    },
    "sslyze": {
        "RIO-TLS-SELF-SIGNED": _any(_VALID + r".*self.signed"),
        "RIO-TLS-UNTRUSTED-ISSUER": _any(
            _VALID + r"(?!.*subjectAltName)"
            r"(?!.*self.signed)(?!.*expired)(?!.*not yet valid)"
        ),
        "RIO-TLS-EXPIRED": _any(_VALID + r".*expired"),
        "RIO-TLS-NOT-YET-VALID": _any(_VALID + r".*not yet valid"),
        "RIO-TLS-NAME-MISMATCH": _any(_VALID + r".*no matching subjectAltName"),
        "RIO-TLS-WEAK-KEY": _any(
            r"deployments\[0\]\.received_certificate_chain\[0\]\.public_key\.key_size=(512|768|1024)$"
        ),
        "RIO-TLS-WEAK-SIGNATURE": _any(r"deployments\[0\]\.verified_chain_has_sha1_signature=True"),
        "RIO-TLS-LEGACY-1-0": _any(r"^tls_1_0_cipher_suites\.result\.accepted_cipher_suites\[0\]"),
        "RIO-TLS-LEGACY-1-1": _any(r"^tls_1_1_cipher_suites\.result\.accepted_cipher_suites\[0\]"),
        "RIO-TLS-NULL-OR-ANON-SUITE": _any(
            r"accepted_cipher_suites\[\d+\]\.cipher_suite\.name=TLS_\w*(anon|NULL)"
        ),
        "RIO-TLS-NO-FORWARD-SECRECY": _any(
            r"accepted_cipher_suites\[\d+\]\.cipher_suite\.name=TLS_RSA_WITH_"
        ),
        "RIO-TLS-CBC-SHA1": _any(
            r"accepted_cipher_suites\[\d+\]\.cipher_suite\.name=TLS_\w+_CBC_SHA$"
        ),
        "RIO-TLS-NO-TLS13": _none(
            r"^tls_1_3_cipher_suites\.status=COMPLETED",
            r"^tls_1_3_cipher_suites\.result\.accepted_cipher_suites\[0\]",
        ),
        "RIO-TLS-WEAK-DH": _any(
            r"accepted_cipher_suites\[\d+\]\.ephemeral_key\.size=(512|768|1024)$"
        ),
        "RIO-TLS-INSECURE-RENEGOTIATION": _any(r"supports_secure_renegotiation=False"),
        "RIO-TLS-OCSP-NOT-STAPLED": _any(r"certificate_deployments\[0\]\.ocsp_response=None"),
    },
}
"""tool -> rule -> predicate over the tool's lines for the flaw's endpoint"""


def _score(
    lab: Any, flaws: list[Any], out: Path, rio_found: list[dict[str, Any]], tools: Iterable[str]
) -> dict[str, Any]:
    outputs: dict[str, Lines] = {
        "nmap": _nmap_lines(out),
        "testssl": _testssl_lines(out),
        "sslyze": _sslyze_lines(out),
    }
    rows = []
    for flaw in flaws:
        ip = lab.ip(flaw.server)
        row: dict[str, Any] = {"flaw": flaw.id, "rule": flaw.rule}
        for tool in tools:
            if tool == "rio":
                row[tool] = any(
                    f["rule"] == flaw.rule and f["ip"] == ip and f["port"] == flaw.port
                    for f in rio_found
                )
            else:
                match = MATCHERS.get(tool, {}).get(flaw.rule)
                row[tool] = bool(match and match(outputs[tool].get((ip, flaw.port), [])))
        rows.append(row)
    false_positives: dict[str, list[str]] = {}
    for tool in tools:
        wrong: list[str] = []
        for server in SOUND:
            ip = lab.ip(server)
            if tool == "rio":
                wrong += [f"{f['rule']}@{server}:{f['port']}" for f in rio_found if f["ip"] == ip]
                continue
            for (lip, lport), lines in outputs[tool].items():
                if lip != ip:
                    continue
                for rule, match in MATCHERS.get(tool, {}).items():
                    if match(lines):
                        wrong.append(f"{rule}@{server}:{lport}")
        false_positives[tool] = sorted(set(wrong))
    return {"flaws": rows, "false_positives": false_positives}


def _print(report: dict[str, Any]) -> None:
    tools = list(report["seconds"])
    print("| planted flaw | rule | " + " | ".join(tools) + " |")
    print("|---|---|" + "---|" * len(tools))
    for row in report["flaws"]:
        marks = " | ".join("yes" if row[t] else "-" for t in tools)
        print(f"| {row['flaw']} | {row['rule']} | {marks} |")
    total = len(report["flaws"])
    found = " | ".join(f"**{sum(r[t] for r in report['flaws'])}/{total}**" for t in tools)
    print(f"| found | | {found} |")
    fps = " | ".join(str(len(report["false_positives"][t])) for t in tools)
    print(f"| findings on the sound servers | | {fps} |")
    secs = " | ".join(f"{report['seconds'][t]:.1f} s" for t in tools)
    print(f"| wall time | | {secs} |")


if __name__ == "__main__":
    raise SystemExit(main())
