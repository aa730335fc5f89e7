"""EventBridge Scheduler expressions evaluated locally (:mod:`soorma.functions.scheduler.expressions`): next runs of
cron and rate expressions, in a time zone across daylight-saving changes, and the refusals with their reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from soorma.functions.scheduler.expressions import InvalidExpression, next_run, parse, runs


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_weekly_cron_keeps_its_wall_time_across_the_daylight_saving_change():
    # Paris moves from UTC+1 to UTC+2 on 2026-03-29: 09:00 local is 08:00 UTC before, 07:00 UTC after
    assert runs("cron(0 9 ? * MON *)", "Europe/Paris", _utc(2026, 3, 20), 3) == [
        _utc(2026, 3, 23, 8), _utc(2026, 3, 30, 7), _utc(2026, 4, 6, 7)]


def test_cron_lists_ranges_steps_names_and_the_last_day_of_the_month():
    assert runs("cron(0/20 8-9 ? JAN-FEB MON-FRI 2027)", "UTC", _utc(2027, 1, 1), 4) == [
        _utc(2027, 1, 1, 8), _utc(2027, 1, 1, 8, 20), _utc(2027, 1, 1, 8, 40), _utc(2027, 1, 1, 9)]
    assert runs("cron(30 23 L * ? *)", "UTC", _utc(2028, 2, 1), 2) == [
        _utc(2028, 2, 29, 23, 30), _utc(2028, 3, 31, 23, 30)]  # a leap year
    assert runs("cron(0 0 1,15 * ? *)", "UTC", _utc(2027, 5, 1), 2) == [_utc(2027, 5, 15), _utc(2027, 6, 1)]
    # day-of-week 1 is Sunday in EventBridge
    assert runs("cron(0 12 ? * 1 *)", "UTC", _utc(2027, 5, 1), 1) == [_utc(2027, 5, 2, 12)]


def test_a_rate_runs_from_its_anchor_and_a_year_limited_cron_can_end():
    anchor = _utc(2027, 1, 1, 0, 0, 30)
    parsed = parse("rate(5 minutes)")
    assert next_run(parsed, "UTC", _utc(2027, 1, 1, 0, 12), anchor=anchor) == _utc(2027, 1, 1, 0, 15, 30)
    assert next_run(parse("cron(0 0 1 1 ? 2020)"), "UTC", _utc(2027, 1, 1)) is None


def test_seconds_are_only_a_local_extension_below_the_minimum_interval():
    with pytest.raises(InvalidExpression):
        parse("rate(5 seconds)")
    assert parse("rate(2 seconds)", min_interval_s=1).seconds == 2
    with pytest.raises(InvalidExpression, match="at most every"):
        parse("rate(2 seconds)", min_interval_s=5)


@pytest.mark.parametrize("expression, reason", [
    ("cron(0 9 * * MON *)", "exactly one"),
    ("cron(0 9 ? * ? *)", "exactly one"),
    ("cron(0 9 ? * MON)", "six fields"),
    ("cron(60 9 ? * MON *)", "outside 0-59"),
    ("cron(0 9 ? * 2#1 *)", "not supported"),
    ("cron(0 9 15W * ? *)", "not supported"),
    ("cron(0 9-7 ? * MON *)", "backwards"),
    ("cron(0 9 ? * MON 1900)", "outside 1970-2199"),
    ("cron(0 */0 ? * MON *)", "step"),
    ("rate(1 minutes)", "rate(1 minute)"),
    ("rate(5 minute)", "rate(5 minutes)"),
    ("rate(0 minutes)", "positive"),
    ("rate(3 weeks)", "unit"),
    ("at(2027-01-01T00:00:00)", "rate(value unit) or cron"),
])
def test_bad_expressions_are_refused_with_a_reason(expression, reason):
    with pytest.raises(InvalidExpression, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse(expression)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(InvalidExpression, match="time zone"):
        runs("cron(0 9 ? * MON *)", "Mars/Olympus", _utc(2027, 1, 1), 1)
