"""EventBridge Scheduler's schedule expressions, validated and evaluated locally: when does a schedule run next.

The syntax is EventBridge Scheduler's (https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html):

* ``rate(value unit)``: ``unit`` is ``minute``/``minutes``, ``hour``/``hours``, ``day``/``days`` (singular for 1);
  the runs are ``anchor + k * interval`` (the anchor being the schedule's creation). The local extension
  ``rate(N second(s))`` is accepted only when ``SOORMA_SCHEDULE_MIN_INTERVAL_S`` allows an interval under a minute
  (tests; EventBridge itself has no seconds);
* ``cron(minutes hours day-of-month month day-of-week year)``: six fields, one of day-of-month / day-of-week ``?``;
  each field ``*``, a value, a range ``a-b``, a step ``*/n`` / ``a/n`` / ``a-b/n``, or a comma list of those; months
  ``1-12`` or ``JAN-DEC``, days of the week ``1-7`` (1 = Sunday) or ``SUN-SAT``, years 1970-2199; ``L`` (last day of
  the month) in day-of-month. ``W`` and ``#`` are refused (:class:`InvalidExpression`) rather than mis-evaluated.

Times are wall-clock times in the schedule's IANA time zone (``zoneinfo``), so a 09:00 schedule stays at 09:00
across daylight-saving changes; a wall time that does not exist that day (the spring-forward gap) runs at the
corresponding UTC instant ``zoneinfo`` gives it.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: How far ahead a cron expression is searched for its next run (a year-restricted one past that never runs again).
SEARCH_DAYS = 366 * 8


class InvalidExpression(ValueError):
    """The expression or time zone is not valid (the message says why); the API answers 422."""


_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name} | {
    m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_RATE = re.compile(r"^rate\(\s*(\d{1,9})\s+([a-z]+)\s*\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Rate:
    """A ``rate(...)`` expression: ``seconds`` between runs."""

    seconds: int


@dataclass(frozen=True)
class Cron:
    """A ``cron(...)`` expression's allowed values per field; ``last_day``: day-of-month ``L``; ``any_dom`` /
    ``any_dow``: that field is ``?`` (or ``*``)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 1 = Sunday … 7 = Saturday
    years: frozenset[int]
    last_day: bool
    any_dom: bool
    any_dow: bool


def parse(expression: str, *, min_interval_s: float = 60.0) -> Rate | Cron:
    """Parse ``expression`` (see the module docstring). ``min_interval_s``: the shortest ``rate`` interval allowed
    (seconds; below 60 ``rate(N seconds)`` is accepted). Raises :class:`InvalidExpression`."""
    text = expression.strip()
    if (m := _RATE.match(text)) is not None:
        return _rate(int(m.group(1)), m.group(2), min_interval_s)
    if (m := _CRON.match(text)) is not None:
        return _cron(m.group(1))
    raise InvalidExpression("the expression must be rate(value unit) or cron(minutes hours day-of-month month "
                            "day-of-week year), e.g. rate(5 minutes) or cron(0 9 ? * MON *)")


def _rate(value: int, unit: str, min_interval_s: float) -> Rate:
    base = unit[:-1] if unit.endswith("s") else unit
    if base not in _UNITS or (base == "second" and min_interval_s >= 60):
        raise InvalidExpression(f"rate unit must be minute(s), hour(s) or day(s), not {unit!r}")
    if value < 1:
        raise InvalidExpression("a rate's value must be a positive whole number")
    if (value == 1) != (unit == base):
        raise InvalidExpression(f"write rate(1 {base}) for one, rate({max(value, 2)} {base}s) for more")
    seconds = value * _UNITS[base]
    if seconds < min_interval_s:
        raise InvalidExpression(f"a schedule may run at most every {min_interval_s:g} seconds")
    return Rate(seconds)


def _cron(body: str) -> Cron:
    fields = body.split()
    if len(fields) != 6:
        raise InvalidExpression("cron(...) takes six fields: minutes hours day-of-month month day-of-week year")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise InvalidExpression("exactly one of day-of-month and day-of-week must be '?'")
    last_day = dom == "L"
    return Cron(
        minutes=_field(minute, 0, 59, "minutes"),
        hours=_field(hour, 0, 23, "hours"),
        days=frozenset() if last_day or dom == "?" else _field(dom, 1, 31, "day-of-month"),
        months=_field(month, 1, 12, "month", _MONTHS),
        weekdays=frozenset() if dow == "?" else _field(dow, 1, 7, "day-of-week", _DAYS),
        years=_field(year, 1970, 2199, "year"),
        last_day=last_day,
        any_dom=dom in ("?", "*"),
        any_dow=dow in ("?", "*"),
    )


def _value(token: str, low: int, high: int, name: str, names: dict[str, int] | None) -> int:
    token = token.upper()
    if names and token in names:
        return names[token]
    if not token.isdigit():
        raise InvalidExpression(f"{name}: {token!r} is not a value of {low}-{high}"
                                + (" or a name" if names else "") + " (W, # and L here are not supported)")
    value = int(token)
    if not low <= value <= high:
        raise InvalidExpression(f"{name}: {value} is outside {low}-{high}")
    return value


def _field(text: str, low: int, high: int, name: str, names: dict[str, int] | None = None) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise InvalidExpression(f"{name}: empty list item")
        span, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise InvalidExpression(f"{name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span in ("*", "?"):
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _value(a, low, high, name, names), _value(b, low, high, name, names)
            if first > last:
                raise InvalidExpression(f"{name}: range {span!r} runs backwards")
        else:
            first = _value(span, low, high, name, names)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; raises :class:`InvalidExpression` for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidExpression(f"unknown time zone {name[:64]!r} (an IANA name such as UTC or Europe/Paris)") from None


def next_run(parsed: Rate | Cron, timezone: str, after: datetime, *, anchor: datetime | None = None) -> datetime | None:
    """The first run strictly after ``after`` (aware), in UTC; ``None`` when a cron expression has no run within
    :data:`SEARCH_DAYS`. ``anchor``: a rate's first instant (default ``after``)."""
    if isinstance(parsed, Rate):
        start = (anchor or after).astimezone(UTC)
        steps = max(0, int((after - start).total_seconds() // parsed.seconds) + 1)
        return start + timedelta(seconds=steps * parsed.seconds)
    tz = zone(timezone)
    local_after = after.astimezone(tz)
    day = local_after.date()
    for _ in range(SEARCH_DAYS):
        if _day_matches(parsed, day):
            for hour in sorted(parsed.hours):
                for minute in sorted(parsed.minutes):
                    at = datetime.combine(day, time(hour, minute), tzinfo=tz).astimezone(UTC)
                    if at > after:
                        return at
        day += timedelta(days=1)
    return None


def _day_matches(c: Cron, day: date) -> bool:
    if day.year not in c.years or day.month not in c.months:
        return False
    weekday = (day.isoweekday() % 7) + 1  # Sunday = 1
    if c.last_day:
        dom_ok = day.day == calendar.monthrange(day.year, day.month)[1]
    else:
        dom_ok = c.any_dom or day.day in c.days
    dow_ok = c.any_dow or weekday in c.weekdays
    return dom_ok and dow_ok


def runs(expression: str, timezone: str, after: datetime, count: int, *, min_interval_s: float = 60.0,
         anchor: datetime | None = None) -> list[datetime]:
    """The next ``count`` runs after ``after`` (UTC), for showing a schedule's upcoming runs."""
    parsed = parse(expression, min_interval_s=min_interval_s)
    zone(timezone)
    out: list[datetime] = []
    when: datetime | None = after
    while len(out) < count and when is not None:
        when = next_run(parsed, timezone, when, anchor=anchor or after)
        if when is not None:
            out.append(when)
    return out


__all__ = ["Cron", "InvalidExpression", "Rate", "next_run", "parse", "runs", "zone"]
