"""Settings are read once, from RIO_* only, with embedded defaults and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.settings import load_settings


def test_defaults_need_nothing_installed() -> None:
    s = load_settings({})
    assert s.home == Path(".rio")
    assert s.database_url == "sqlite:///.rio/rio.db"
    assert (s.budget_url, s.executor, s.timezone) == ("memory://", "local", "Asia/Shanghai")
    assert s.master_key_file == Path(".rio/master.key")


def test_postgresql_url_gets_the_psycopg_driver() -> None:
    s = load_settings({"RIO_DATABASE_URL": "postgresql://rio@127.0.0.1/rio"})
    assert s.database_url == "postgresql+psycopg://rio@127.0.0.1/rio"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RIO_BUDGET_URL": "mongodb://x"}, "RIO_BUDGET_URL"),
        ({"RIO_EXECUTOR": "dask"}, "RIO_EXECUTOR: 'dask' is not one of local, celery"),
        ({"RIO_EXECUTOR": "celery"}, "RIO_EXECUTOR=celery needs RIO_BROKER_URL"),
        (
            {"RIO_EXECUTOR": "celery", "RIO_BROKER_URL": "redis://127.0.0.1:6379/11"},
            "RIO_EXECUTOR=celery needs RIO_PERMIT_KEY",
        ),
        ({"RIO_PERMIT_KEY": "short"}, "RIO_PERMIT_KEY: shorter than 32"),
        ({"RIO_BROKER_URL": "kafka://x"}, "RIO_BROKER_URL"),
        ({"RIO_TIMEZONE": "Mars/Base"}, "RIO_TIMEZONE: 'Mars/Base' is not a known timezone"),
        ({"RIO_DNS_PORT": "70000"}, "RIO_DNS_PORT: 70000 is outside 1..65535"),
        ({"RIO_CHECKPOINT_EVERY": "often"}, "RIO_CHECKPOINT_EVERY: 'often' is not a whole number"),
        ({"RIO_CONTACT": "soc@x.example\r\nX-Evil: 1"}, "RIO_CONTACT: "),
        ({"RIO_CONTACT": "Acme SOC <soc@x.example>"}, "RIO_CONTACT: "),
        ({"RIO_PUBLIC_BASE_URL": "rio.psb.example"}, "RIO_PUBLIC_BASE_URL: "),
        ({"RIO_PUBLIC_BASE_URL": "ftp://rio.psb.example"}, "RIO_PUBLIC_BASE_URL: "),
        ({"RIO_PUBLIC_BASE_URL": "https://rio.psb.example/?q=1"}, "RIO_PUBLIC_BASE_URL: "),
        ({"RIO_PUBLIC_BASE_URL": "https://rio.psb.example/#top"}, "RIO_PUBLIC_BASE_URL: "),
        ({"RIO_PUBLIC_BASE_URL": "https://user@rio.psb.example"}, "RIO_PUBLIC_BASE_URL: "),
        # would end or split the User-Agent comment the URL is written into
        ({"RIO_PUBLIC_BASE_URL": "https://rio.psb.example/a)b"}, "RIO_PUBLIC_BASE_URL: "),
        ({"RIO_PUBLIC_BASE_URL": "https://rio.psb.example/a;b"}, "RIO_PUBLIC_BASE_URL: "),
        ({"RIO_PUBLIC_BASE_URL": "https://rio.psb.example/a b"}, "RIO_PUBLIC_BASE_URL: "),
        ({"RIO_PUBLIC_BASE_URL": "https://rio.psb.example/\r\n"}, "RIO_PUBLIC_BASE_URL: "),
    ],
)
def test_impossible_settings_are_refused_naming_the_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_settings(env)


def test_master_key_from_the_environment_is_not_shown_in_repr() -> None:
    s = load_settings({"RIO_MASTER_KEY": "c2VjcmV0"})
    assert "c2VjcmV0" not in repr(s)


def test_settings_are_frozen() -> None:
    s = load_settings({})
    with pytest.raises(AttributeError):
        s.home = Path("/elsewhere")  # type: ignore[misc]


def test_contact_is_a_bare_mailbox_for_the_from_header() -> None:
    assert load_settings({"RIO_CONTACT": "soc@acme.example"}).contact == "soc@acme.example"
    assert load_settings({}).contact is None


def test_public_base_url_gives_each_notice_its_public_check() -> None:
    s = load_settings({"RIO_PUBLIC_BASE_URL": "https://rio.psb.example:8443/rio/"})
    assert s.public_base_url == "https://rio.psb.example:8443/rio"
    assert s.verify_url("N-20261204-1") == "https://rio.psb.example:8443/rio/verify/N-20261204-1"
    assert load_settings({}).verify_url("N-20261204-1") is None


def test_postgres_scheme_is_refused_naming_the_scheme_and_the_fix() -> None:
    import pytest

    from orchestrator.errors import InputError

    with pytest.raises(InputError) as err:
        load_settings({"RIO_DATABASE_URL": "postgres://rio:secret@127.0.0.1/rio"})
    message = str(err.value)
    assert "'postgres://'" in message and "postgresql+psycopg://127.0.0.1/rio" in message
    assert "secret" not in message
