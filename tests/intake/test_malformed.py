"""Malformed files a red team wrote: each is ``FILE: field: problem`` (exit 2), never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError, PolicyFileError, ScopeFileError
from orchestrator.intake._yaml import _FastStrictLoader, _StrictLoader
from orchestrator.intake.policy import Policy, parse_policy
from orchestrator.intake.scope import Scope, parse_scope

ROOT = Path(__file__).resolve().parents[2]
GOOD_SCOPE = (ROOT / "scopes" / "demo-loopback.yaml").read_text()
GOOD_POLICY = (ROOT / "policies" / "demo.yaml").read_text()


def _scope_error(text: str) -> ScopeFileError:
    with pytest.raises(ScopeFileError) as caught:
        parse_scope(text.encode(), "scopes/red.yaml")
    assert str(caught.value).startswith("scopes/red.yaml: ")
    return caught.value


def _policy_error(text: str) -> PolicyFileError:
    with pytest.raises(PolicyFileError) as caught:
        parse_policy(text.encode(), "policies/red.yaml")
    assert str(caught.value).startswith("policies/red.yaml: ")
    return caught.value


def test_scope_with_a_month_that_does_not_exist_is_refused_with_its_line() -> None:
    err = _scope_error(GOOD_SCOPE.replace("start: 2026-01-01T00:00:00", "start: 2026-13-45"))
    assert err.field.startswith("line ") and "2026-13-45" in err.problem


def test_policy_blackout_on_february_30_is_refused_with_its_line() -> None:
    err = _policy_error(GOOD_POLICY.replace("blackouts: []", "blackouts: [{date: 2026-02-30}]"))
    assert err.field.startswith("line ") and "2026-02-30" in err.problem


@pytest.mark.parametrize("value", ["99999999999d", "99999999999999999999", ".inf", ".nan", "1e400"])
def test_policy_duration_too_large_or_not_finite_is_refused(value: str) -> None:
    err = _policy_error(GOOD_POLICY.replace("probe_timeout: 10s", f"probe_timeout: {value}"))
    assert err.field == "probe_timeout", err


def test_a_number_with_thousands_of_digits_is_refused_not_a_traceback() -> None:
    err = _policy_error(GOOD_POLICY.replace("concurrency: 32", f"concurrency: {'9' * 5000}"))
    assert err.field.startswith("line "), err


@pytest.mark.parametrize("opener,closer", [("[", "]"), ("{a: ", "}"), ("- ", "")])
def test_five_thousand_levels_of_nesting_are_refused(opener: str, closer: str) -> None:
    deep = (
        opener * 5000 + "1" + closer * 5000
        if closer
        else "".join("  " * n + opener + "\n" for n in range(5000))
    )
    err = _scope_error(GOOD_SCOPE + f"\nextra: {deep}\n" if closer else deep)
    assert "nested" in err.problem


@pytest.mark.parametrize("levels", [65, 100, 900])
def test_nesting_below_libyamls_own_limit_is_refused_at_our_depth_too(levels: int) -> None:
    # libyaml refuses 1000 levels itself; under that the composed nodes are measured.
    deep = "[" * levels + "1" + "]" * levels
    with pytest.raises(yaml.composer.ComposerError, match="nested deeper than 64 levels"):
        yaml.load(deep, Loader=_FastStrictLoader)
    err = _scope_error(GOOD_SCOPE + f"\nextra: {deep}\n")
    assert err.problem == "nested deeper than 64 levels" and err.field.startswith("line ")


def test_the_fast_loader_reads_every_shipped_file_as_the_exact_one_does() -> None:
    files = sorted([*(ROOT / "scopes").glob("*.yaml"), *(ROOT / "policies").glob("*.yaml")])
    assert files
    for path in files:
        text = path.read_text()
        fast = yaml.load(text, Loader=_FastStrictLoader)
        exact = yaml.load(text, Loader=_StrictLoader)
        assert fast == exact, path


@pytest.mark.parametrize("key", ["[a, b]", "{a: 1}"])
def test_a_list_or_mapping_as_a_key_is_refused_with_its_line_not_a_traceback(key: str) -> None:
    err = _scope_error(GOOD_SCOPE + f"\n? {key}\n: 1\n")
    assert err.field.startswith("line ") and "a key must be a plain value" in err.problem, err


def test_a_duplicate_key_is_refused_by_the_fast_loader_too() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'a'"):
        yaml.load("a: 1\nb: 2\na: 3\n", Loader=_FastStrictLoader)


def _rio(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIO_")}
    env |= {"RIO_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.interfaces.cli", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_policy_check_of_an_impossible_date_exits_2_with_file_and_line(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_POLICY.replace("blackouts: []", "blackouts: [{date: 2026-02-30}]"))
    result = _rio(tmp_path, "policy", "check", str(bad))
    assert result.returncode == 2, result.stderr
    assert f"{bad}: line " in result.stderr and "Traceback" not in result.stderr


def test_gate_explain_at_an_unparsable_time_is_a_clear_error(tmp_path: Path) -> None:
    result = _rio(tmp_path, "gate", "explain", "N-1", "127.0.0.1", "--at", "yesterday")
    assert result.returncode == 2, result.stderr
    assert "--at 'yesterday'" in result.stderr and "Traceback" not in result.stderr


# -- every YAML a generator can write ------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2026-02-30", "2026-13-45", "99999999999d", ".inf", "72h", "0x7f.0.0.1"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _mutate(base: dict[str, object], key: str, value: object) -> str:
    doc = dict(base)
    doc[key] = value
    return yaml.safe_dump(doc, sort_keys=False)


_SCOPE_DOC = yaml.safe_load(GOOD_SCOPE)
_POLICY_DOC = yaml.safe_load(GOOD_POLICY)


def _frozen_or_named_input_error(text: str | bytes, parse: object, model: type, name: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    try:
        result = parse(data, name)  # type: ignore[operator]
    except InputError as exc:
        assert str(exc).startswith(f"{name}: "), exc
        return
    assert isinstance(result, model)
    with pytest.raises((TypeError, ValueError, AttributeError)):
        result.format = "changed"  # frozen


_SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SLOW
@given(key=st.sampled_from([*_SCOPE_DOC, "extra"]), value=_values)
def test_scope_loader_gives_a_frozen_scope_or_a_named_input_error(key: str, value: object) -> None:
    _frozen_or_named_input_error(_mutate(_SCOPE_DOC, key, value), parse_scope, Scope, "s.yaml")


@_SLOW
@given(key=st.sampled_from([*_POLICY_DOC, "extra"]), value=_values)
def test_policy_loader_gives_a_frozen_policy_or_a_named_input_error(
    key: str, value: object
) -> None:
    _frozen_or_named_input_error(_mutate(_POLICY_DOC, key, value), parse_policy, Policy, "p.yaml")


@_SLOW
@given(
    text=st.text(
        alphabet=st.sampled_from(list("[]{}-:,&*!|>'\"#%@` \n\t.0123456789abcTZ")), max_size=200
    )
)
def test_both_loaders_survive_arbitrary_yaml_text(text: str) -> None:
    _frozen_or_named_input_error(text, parse_scope, Scope, "s.yaml")
    _frozen_or_named_input_error(text, parse_policy, Policy, "p.yaml")


@_SLOW
@given(
    line=st.sampled_from(GOOD_POLICY.splitlines()),
    value=st.sampled_from(
        ["2026-02-30", "9" * 5000, ".inf", "-.inf", "99999999999d", "[[[[", "&a [*a]"]
    ),
)
def test_policy_with_one_value_replaced_by_garbage(line: str, value: str) -> None:
    if ":" not in line or line.lstrip().startswith("#"):
        return
    key = line.split(":", 1)[0]
    text = GOOD_POLICY.replace(line, f"{key}: {value}", 1)
    _frozen_or_named_input_error(text, parse_policy, Policy, "p.yaml")
