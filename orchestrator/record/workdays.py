"""Chinese working days for rectification deadlines and re-checks (MPS Order 151, Art. 19).

A working day in China is a Monday-to-Friday that is not a day off, or a Saturday/Sunday that
the State Council's yearly notice makes a working day (调休, a make-up working weekend). The days
off and the make-up days are announced year by year, so a year that has not been announced
cannot be computed, only guessed; rio refuses to guess a legal deadline.

Two sources cover years:

* the ``holidays`` package's China calendar, for the years whose State Council notices it has
  transcribed (the years of its ``special_public_holidays`` table, which holds every notice's
  moved days off and make-up days). The package itself will compute any year up to 2100 from
  fixed rules, but those later years lack the notice and are not trusted;
* an operator calendar file (YAML, ``format: rio.calendar/v1``) for one year, typed in from that
  year's notice. It replaces the package's view of its year, so it can also correct it.

Years after the last covered one are **provisional**: the package's rule-based days off (fixed
holidays, no make-up working days), for up to :data:`PROVISIONAL_YEARS` years. An officer can
still order rectification into such a year; :meth:`WorkingCalendar.is_provisional` says that a
date was computed from them, the order and the record say "provisional", and
:func:`~orchestrator.record.rectify.recompute_provisional` recomputes the dates once the
operator adds that year's notice (``rio calendar add FILE``, stored in ``RIO_HOME/calendars/``).
A date before the first covered year, or past the provisional years, raises
:class:`~orchestrator.errors.CalendarRangeError`.

Operator file::

    format: rio.calendar/v1
    year: 2027
    source: "State Council General Office notice on the 2027 holiday arrangements"
    holidays: [2027-01-01, 2027-02-05, ...]   # every day off, as the notice lists them
    workdays: [2027-02-14, ...]               # Saturdays/Sundays that are working days

A ``workdays`` entry may fall in the last December of the previous year, since a notice can
move New Year's Day with a make-up day in late December. The file's JSON Schema is
:func:`calendar_json_schema` (``rio schema calendar``); ``calendars/example-2026.yaml`` in the
package is an example.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from pathlib import Path
from typing import Any

import holidays
import jsonschema
import yaml

from orchestrator.errors import CalendarFileError, CalendarRangeError
from orchestrator.record._zone import CALENDAR_ZONE

__all__ = [
    "CALENDAR_FORMAT",
    "CALENDAR_ZONE",
    "PROVISIONAL_YEARS",
    "OperatorCalendar",
    "WorkingCalendar",
    "add_calendar_file",
    "calendar_files",
    "calendar_json_schema",
    "example_calendar_file",
    "load_operator_calendar",
]

#: How many years after the last covered one the calendar answers provisionally.
PROVISIONAL_YEARS = 5

_PACKAGE_DIR = Path(__file__).resolve().parent
_SCHEMA_FILE = _PACKAGE_DIR / "calendar.schema.json"

#: The ``format`` value an operator calendar file must carry.
CALENDAR_FORMAT = "rio.calendar/v1"

_FIELDS = frozenset({"format", "year", "source", "holidays", "workdays"})
_SATURDAY = 5
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, kw_only=True, slots=True)
class OperatorCalendar:
    """One year's days off and make-up working days, as an operator typed them in.

    Attributes:
        year: The year the notice is for.
        source: Where the dates come from (the notice's title or number).
        holidays: Every day off of that year.
        workdays: Saturdays and Sundays that are working days.
        file: The file it was read from.
    """

    year: int
    source: str
    holidays: frozenset[date]
    workdays: frozenset[date]
    file: str


class WorkingCalendar:
    """Working days in mainland China, for the years an authoritative source covers.

    Dates are calendar days in China (Asia/Shanghai): convert instants to local dates before
    asking. ``datetime`` values are refused so that a UTC timestamp is not silently taken for
    a Chinese calendar day.

    Attributes:
        covered_years: The years this calendar can answer for.
    """

    covered_years: frozenset[int]

    def __init__(self, *, extra_file: Path | None = None, extra_files: Sequence[Path] = ()) -> None:
        """Build the calendar from the ``holidays`` package and operator files.

        Args:
            extra_file: An operator calendar file (``rio.calendar/v1``) for one year; it
                covers a year the package lacks, or replaces the package's view of its year.
            extra_files: More such files (``RIO_HOME/calendars/``); ``extra_file`` wins
                over one of them for the same year.

        Raises:
            CalendarFileError: An operator file is missing or malformed.
        """
        operators: dict[int, OperatorCalendar] = {}
        for file in [*extra_files, *([extra_file] if extra_file is not None else [])]:
            loaded = load_operator_calendar(file)
            operators[loaded.year] = loaded

        china = holidays.country_holidays("CN", years=())
        # Each State Council notice moves days off and names make-up working days; the package
        # records them per year in this table, so its keys are the years it has a notice for.
        announced: Mapping[int, Any] = getattr(china, "special_public_holidays", None) or {}
        announced_years = {year for year in announced if isinstance(year, int)}
        package_years = announced_years - operators.keys()
        if package_years:
            china = holidays.country_holidays("CN", years=sorted(package_years))

        days_off = {day for day in china if day.year in package_years}
        workdays = {day for day in china.weekend_workdays if day.year in package_years}
        sources = dict.fromkeys(
            package_years,
            f"holidays {_package_version('holidays')} China calendar (State Council notices)",
        )
        for operator in operators.values():
            days_off |= operator.holidays
            # The operator's notice is the authority for its make-up days wherever they fall.
            workdays -= {day for day in workdays if day.year == operator.year}
            workdays |= operator.workdays
            sources[operator.year] = f"{operator.file}: {operator.source}"

        self.covered_years = frozenset(sources)
        # The years after the last covered one, up to PROVISIONAL_YEARS, that nobody has typed
        # in yet: the package's fixed-rule days off, no make-up days (the notice decides those).
        # From the package's last notice on (gaps before an operator's later year included)
        # up to PROVISIONAL_YEARS after the last covered year; the package computes no year
        # past its own end (2100 today).
        last = max(self.covered_years, default=date.today().year - 1)
        first = max(announced_years, default=last) + 1
        end = int(getattr(china, "end_year", MAXYEAR))
        self.provisional_years = frozenset(
            year
            for year in range(first, min(last + PROVISIONAL_YEARS, end) + 1)
            if year not in self.covered_years
        )
        if self.provisional_years:
            guessed = holidays.country_holidays("CN", years=sorted(self.provisional_years))
            days_off |= {day for day in guessed if day.year in self.provisional_years}
            for year in self.provisional_years:
                sources[year] = (
                    f"provisional: holidays {_package_version('holidays')} fixed-rule days off, "
                    f"no State Council notice for {year} (add one with rio calendar add FILE)"
                )

        self._days_off = frozenset(days_off)
        self._workdays = frozenset(workdays)
        self._sources = sources

    def is_provisional(self, day: date) -> bool:
        """Tell whether ``day`` lies in a provisional year (rule-based, no notice yet)."""
        _require_date(day)
        return day.year in self.provisional_years

    def provisional_between(self, start: date, end: date) -> tuple[int, ...]:
        """The provisional years a count from ``start`` to ``end`` passes through."""
        low, high = sorted((start, end))
        return tuple(y for y in range(low.year, high.year + 1) if y in self.provisional_years)

    def source_for(self, year: int) -> str:
        """Say where the calendar of ``year`` comes from (for a record's provenance).

        Args:
            year: A covered year.

        Returns:
            The package and version, or the operator file and its stated source.

        Raises:
            CalendarRangeError: The year is neither covered nor provisional.
        """
        if year not in self._sources:
            raise CalendarRangeError(
                f"year {year} is outside the working-day calendar, which covers "
                f"{_describe_years(self.covered_years)}"
            )
        return self._sources[year]

    def is_working_day(self, day: date) -> bool:
        """Tell whether ``day`` is a working day in China.

        Args:
            day: A calendar date (not a datetime).

        Returns:
            True for a weekday that is not a day off, or a make-up working weekend day.

        Raises:
            CalendarRangeError: ``day`` lies in a year no source covers.
        """
        self._require_covered(day)
        if day.weekday() >= _SATURDAY:
            return day in self._workdays
        return day not in self._days_off

    def add_working_days(self, start: date, n: int) -> date:
        """Return the date ``n`` working days after ``start``.

        The start day itself is not counted, whether or not it is a working day. Three working
        days after Wednesday 2026-09-30 are Thursday 10-08, Friday 10-09 and the make-up
        Saturday 10-10, so the result is 2026-10-10.

        Args:
            start: The day the period runs from (e.g. the rectification deadline).
            n: How many working days to add; 0 returns ``start``.

        Returns:
            The ``n``-th working day after ``start``.

        Raises:
            ValueError: ``n`` is negative.
            CalendarRangeError: The count runs into a year no source covers.
        """
        _require_date(start)
        if n < 0:
            raise ValueError(f"cannot add a negative number of working days ({n})")
        day = start
        remaining = n
        # Bounded: every covered year has working days, and leaving the covered years raises.
        while remaining:
            day += _ONE_DAY
            if self.is_working_day(day):
                remaining -= 1
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """Count the working days after ``start`` up to and including ``end``.

        ``working_days_between(s, add_working_days(s, n)) == n``. When ``end`` is before
        ``start`` the count is negative: the working days after ``end`` up to ``start``.

        Args:
            start: The first day (not counted).
            end: The last day (counted).

        Returns:
            The number of working days in ``(start, end]``, negated if ``end < start``.

        Raises:
            CalendarRangeError: A day in the span lies in a year no source covers.
        """
        _require_date(start)
        _require_date(end)
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start
        while day < end:
            day += _ONE_DAY
            if self.is_working_day(day):
                count += 1
        return count

    def _require_covered(self, day: date) -> None:
        _require_date(day)
        if day.year not in self.covered_years and day.year not in self.provisional_years:
            raise CalendarRangeError(
                f"{day.isoformat()} is outside the working-day calendar, which covers "
                f"{_describe_years(self.covered_years)}; working days of {day.year} are "
                f"not announced to rio: add an operator calendar file ({CALENDAR_FORMAT}) "
                f"typed in from the State Council notice for {day.year}"
            )

    def __repr__(self) -> str:
        return (
            f"WorkingCalendar(covered_years={_describe_years(self.covered_years)}, "
            f"provisional_years={_describe_years(self.provisional_years)})"
        )

    def describe(self) -> str:
        """One line: the authoritative years and the provisional ones."""
        return (
            f"authoritative {_describe_years(self.covered_years)}; provisional "
            f"{_describe_years(self.provisional_years)}"
        )


def calendar_json_schema() -> str:
    """The JSON Schema of operator calendar files (``rio.calendar/v1``), as text."""
    return _SCHEMA_FILE.read_text(encoding="utf-8")


def example_calendar_file() -> Path:
    """The shipped example calendar file (a template to type a notice into)."""
    return _PACKAGE_DIR / "calendars" / "example-2026.yaml"


def calendar_files(home: Path) -> list[Path]:
    """The operator calendar files ``rio calendar add`` stored in a home, by year."""
    folder = home / "calendars"
    return sorted(folder.glob("*.yaml")) if folder.is_dir() else []


def add_calendar_file(home: Path, file: Path) -> OperatorCalendar:
    """Check an operator calendar file and store it in the home as ``calendars/YEAR.yaml``.

    A file already stored for that year is replaced (the newer notice wins).

    Args:
        home: ``RIO_HOME``.
        file: The calendar file to add.

    Returns:
        The calendar as read (its ``file`` is the stored copy).

    Raises:
        CalendarFileError: The file is missing or malformed; nothing is stored.
    """
    loaded = load_operator_calendar(file)
    folder = home / "calendars"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / f"{loaded.year}.yaml"
    partial = folder / f".{loaded.year}.yaml.partial"
    partial.write_bytes(file.read_bytes())
    partial.chmod(0o600)
    partial.replace(target)
    return load_operator_calendar(target)


def load_operator_calendar(path: Path) -> OperatorCalendar:
    """Read an operator calendar file strictly.

    Args:
        path: The YAML file.

    Returns:
        The year's days off and make-up working days.

    Raises:
        CalendarFileError: The file is missing, not YAML, or a field is missing, unknown,
            duplicated or wrong; the error names the field.
    """
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CalendarFileError(file, "", "file does not exist") from exc
    except UnicodeDecodeError as exc:
        raise CalendarFileError(file, "", "not valid UTF-8") from exc
    except OSError as exc:
        raise CalendarFileError(file, "", f"cannot read: {exc.strerror}") from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _DuplicateKeyError as exc:
        raise CalendarFileError(file, exc.key, "duplicate key") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise CalendarFileError(file, "", f"not valid YAML{where}") from exc

    if not isinstance(data, dict):
        raise CalendarFileError(file, "", "expected a mapping of calendar fields")
    missing = sorted(_FIELDS - data.keys(), key=str)
    if missing:
        raise CalendarFileError(file, str(missing[0]), "missing")
    unknown = sorted(data.keys() - _FIELDS, key=str)
    if unknown:
        raise CalendarFileError(file, str(unknown[0]), "unknown field")

    if data["format"] != CALENDAR_FORMAT:
        raise CalendarFileError(file, "format", f"{data['format']!r} is not {CALENDAR_FORMAT!r}")
    year = data["year"]
    if not isinstance(year, int) or isinstance(year, bool) or not MINYEAR < year <= MAXYEAR:
        raise CalendarFileError(file, "year", f"{year!r} is not a year")
    source = data["source"]
    if not isinstance(source, str) or not source.strip():
        raise CalendarFileError(file, "source", "must name the notice the dates come from")

    days_off = _dates(data["holidays"], "holidays", file)
    if not days_off:
        raise CalendarFileError(file, "holidays", "must list the year's days off")
    for i, day in enumerate(days_off):
        if day.year != year:
            raise CalendarFileError(file, f"holidays[{i}]", f"{day} is not in {year}")

    workdays = _dates(data["workdays"], "workdays", file)
    holiday_set = frozenset(days_off)
    for i, day in enumerate(workdays):
        if not (day.year == year or (day.year == year - 1 and day.month == 12)):
            raise CalendarFileError(
                file, f"workdays[{i}]", f"{day} is not in {year} (or in December {year - 1})"
            )
        if day.weekday() < _SATURDAY:
            raise CalendarFileError(
                file,
                f"workdays[{i}]",
                f"{day} is a {day:%A}; list only Saturdays and Sundays that are working days",
            )
        if day in holiday_set:
            raise CalendarFileError(file, f"workdays[{i}]", f"{day} is also listed in holidays")

    # The checks above give the precise words; the published schema must agree with them.
    _check_schema(data, file)
    return OperatorCalendar(
        year=year,
        source=source.strip(),
        holidays=holiday_set,
        workdays=frozenset(workdays),
        file=file,
    )


def _check_schema(data: dict[Any, Any], file: str) -> None:
    """Validate against the published JSON Schema; the error names the first bad field."""
    schema = json.loads(calendar_json_schema())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return
    error = errors[0]
    path = list(error.absolute_path)
    where = str(path[0]) if path else ""
    for part in path[1:]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    if error.validator == "additionalProperties":
        unknown = sorted(set(data) - set(schema["properties"]), key=str)
        raise CalendarFileError(file, str(unknown[0]) if unknown else where, "unknown field")
    if error.validator == "required":
        missing = sorted(set(schema["required"]) - set(data), key=str)
        raise CalendarFileError(file, str(missing[0]) if missing else where, "missing")
    raise CalendarFileError(file, where, error.message)


def _dates(value: Any, name: str, file: str) -> list[date]:
    """Read a list of distinct dates (YAML dates or ``YYYY-MM-DD`` strings)."""
    if not isinstance(value, list):
        raise CalendarFileError(file, name, "expected a list of dates")
    days: list[date] = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        # The loader hands YAML timestamps over as text, so quoted and bare dates read alike.
        if not isinstance(item, str):
            raise CalendarFileError(file, where, f"{item!r} is not a YYYY-MM-DD date")
        day = _parse_day(item, where, file)
        if day in days:
            raise CalendarFileError(file, where, f"{day} is listed twice")
        days.append(day)
    return days


def _parse_day(text: str, where: str, file: str) -> date:
    """Parse a quoted ``YYYY-MM-DD`` date (fromisoformat alone also takes ``20271001``)."""
    problem = f"{text!r} is not a YYYY-MM-DD date"
    if len(text) != len("YYYY-MM-DD"):
        raise CalendarFileError(file, where, problem)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CalendarFileError(file, where, problem) from exc


def _require_date(day: object) -> None:
    """Refuse datetimes (whose Chinese calendar day is ambiguous) and non-dates."""
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(
            f"expected a date, got {type(day).__name__}; convert instants to the "
            f"{CALENDAR_ZONE.key} calendar date first"
        )


def _package_version(name: str) -> str:
    """Return an installed distribution's version, for provenance strings."""
    try:
        return _distribution_version(name)
    except PackageNotFoundError:  # pragma: no cover - only when run from a bare checkout
        return "(unknown version)"


def _describe_years(years: frozenset[int]) -> str:
    """Spell a set of years compactly: ``2001-2026, 2031``."""
    if not years:
        return "no years"
    ordered = sorted(years)
    runs: list[str] = []
    first = previous = ordered[0]
    for year in ordered[1:]:
        if year != previous + 1:
            runs.append(f"{first}-{previous}" if first != previous else str(first))
            first = year
        previous = year
    runs.append(f"{first}-{previous}" if first != previous else str(first))
    return ", ".join(runs)


class _DuplicateKeyError(yaml.YAMLError):
    """A mapping repeats a key; YAML would silently keep the last value."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys and leaves timestamps as text.

    PyYAML turns ``2031-13-01`` into a bare ``ValueError`` with no position; keeping dates as
    strings lets the calendar loader name the field and check the form itself.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    None, None, "a key must be a plain value", key_node.start_mark
                )
            if key in seen:
                raise _DuplicateKeyError(str(key))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return str(value)


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
