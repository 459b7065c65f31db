"""scheduling/hours_spec.py: company calendars in the form people write them.

Worked examples of the grammar and of every error's wording, then hypothesis properties:
format_hours is parse_hours' inverse (and canonical) for arbitrary valid weekly hours, and
no text makes any parser raise anything but CalendarError.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling.calendar import WEEKDAY_NAMES, CalendarError, CompanyCalendar
from scheduling.hours_spec import (
    DEFAULT_HOURS,
    CalendarChange,
    checked_calendar,
    day_notes,
    format_days,
    format_hours,
    format_intervals,
    parse_closure,
    parse_closures,
    parse_days,
    parse_holidays,
    parse_hours,
    parse_special_day,
    parse_special_days,
    weekly_from_json,
    weekly_to_json,
)

PROPS = settings(max_examples=int(os.environ.get("SCHED_EXAMPLES", "200")), deadline=None)


def m(hhmm: str) -> int:
    h, mi = hhmm.split(":")
    return int(h) * 60 + int(mi)


def iv(*pairs: str) -> tuple[tuple[int, int], ...]:
    return tuple((m(p.split("-")[0]), m(p.split("-")[1])) for p in pairs)


CLOSED: tuple[tuple[int, int], ...] = ()


# ----------------------------------------------------------------------------- parsing


def test_the_issue_example() -> None:
    w = parse_hours("mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00")
    lunch = iv("08:30-12:00", "13:00-17:00")
    assert w == (lunch, lunch, lunch, lunch, iv("08:30-14:00"), CLOSED, CLOSED)


@pytest.mark.parametrize(("spec", "open_days"), [
    ("mon 09:00-17:00", {0}),
    ("mon,wed,fri 09:00-17:00", {0, 2, 4}),
    ("fri-mon 09:00-17:00", {4, 5, 6, 0}),  # ranges wrap after Sunday
    ("sun-tue 09:00-17:00", {6, 0, 1}),
    ("mon-sun 09:00-17:00", set(range(7))),
    ("mon-mon 09:00-17:00", {0}),
    ("Monday - Friday 09:00-17:00", {0, 1, 2, 3, 4}),
    ("MON , Wed 9:00 - 17:00", {0, 2}),
    ("mon-fri 09:00-17:00; sat-sun closed", {0, 1, 2, 3, 4}),
    ("mon-fri 09:00-17:00;", {0, 1, 2, 3, 4}),
])
def test_days(spec: str, open_days: set[int]) -> None:
    w = parse_hours(spec)
    assert {d for d in range(7) if w[d]} == open_days
    assert all(w[d] == iv("09:00-17:00") for d in open_days)


def test_days_not_mentioned_and_closed_alone() -> None:
    assert parse_hours("closed") == (CLOSED,) * 7
    assert parse_hours("sat-sun closed") == (CLOSED,) * 7
    assert parse_hours("wed 10:00-11:00")[1] == CLOSED


def test_24_00_is_an_end_and_mentions_add_up() -> None:
    assert parse_hours("sat 22:00-24:00")[5] == ((1320, 1440),)
    assert parse_hours("mon-fri 13:00-17:00; mon-fri 09:00-12:00")[0] == iv(
        "09:00-12:00", "13:00-17:00")
    assert parse_hours("mon 09:00-12:00,12:00-13:00")[0] == iv("09:00-12:00", "12:00-13:00")


@pytest.mark.parametrize(("spec", "message"), [
    ("mon-thu 8:3-12", 'hours "mon-thu 8:3-12": "8:3" is not a time; expected HH:MM'),
    ("mon 9-17", 'hours "mon 9-17": "9" is not a time; expected HH:MM'),
    ("mon 09:00", 'hours "mon 09:00": "09:00" is not an interval; expected HH:MM-HH:MM'),
    ("mon 09:00-10:00-11:00", '"09:00-10:00-11:00" is not an interval; expected HH:MM-HH:MM'),
    ("mon-fri", 'hours "mon-fri": "mon-fri" is not DAYS HOURS; expected e.g. '
                '"mon-fri 09:00-17:00" or "sat-sun closed"'),
    ("09:00-17:00", '"09:00-17:00" is not DAYS HOURS'),
    ("xyz 09:00-10:00", 'hours "xyz 09:00-10:00": "xyz" is not a day; expected mon, tue, wed, '
                        "thu, fri, sat or sun, a range like mon-fri, or a list"),
    ("mon-xyz 09:00-10:00", '"xyz" is not a day'),
    ("mon,,tue 09:00-10:00", '"" is not a day'),
    ("", 'hours "": no hours given; expected DAYS HH:MM-HH:MM'),
    ("   ", "no hours given"),
    ("mon-sun 09:00-17:00; sun closed", "sun is both closed and given hours"),
    # the calendar's own rules (scheduling.calendar.parse_intervals), named by the day
    ("mon 12:00-11:00", "hours \"mon 12:00-11:00\": mon: interval '12:00-11:00' is empty "
                        "or outside the day"),
    ("mon 09:00-25:00", "mon: '25:00' is not a time of day (00:00 to 24:00)"),
    ("mon 09:60-10:00", "'09:60' is not a time of day"),
    ("mon 24:00-24:00", "is empty or outside the day"),
    ("mon-fri 09:00-17:00; fri 09:00-14:00", 'hours "mon-fri 09:00-17:00; fri 09:00-14:00": '
                                             "fri: intervals overlap"),
    ("tue 09:00-12:00,11:00-13:00", "tue: intervals overlap"),
])
def test_errors_name_the_piece_and_the_form(spec: str, message: str) -> None:
    with pytest.raises(CalendarError) as e:
        parse_hours(spec)
    assert message in str(e.value)


def test_the_label_is_the_callers() -> None:
    with pytest.raises(CalendarError, match=r'^--hours "mon 1:1-2:2": "1:1" is not a time'):
        parse_hours("mon 1:1-2:2", "--hours")


def test_days_off_lists() -> None:
    assert parse_days("sat,sun") == {5, 6}
    assert parse_days("fri - sun") == {4, 5, 6}
    with pytest.raises(CalendarError, match=r'^--days-off "sa": "sa" is not a day'):
        parse_days("sa", "--days-off")
    with pytest.raises(CalendarError, match="no day given"):
        parse_days("")


# ----------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(("spec", "shortest"), [
    ("mon 09:00-17:00; tue 09:00-17:00; wed 09:00-17:00; thu 09:00-17:00; fri 09:00-17:00",
     "mon-fri 09:00-17:00"),
    ("fri 08:30-14:00; mon-thu 13:00-17:00,08:30-12:00",
     "mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00"),
    ("mon,wed,fri 09:00-17:00", "mon,wed,fri 09:00-17:00"),
    ("sat 10:00-14:00; sun 10:00-14:00", "sat,sun 10:00-14:00"),
    ("fri,sat,sun,mon 09:00-17:00", "fri-mon 09:00-17:00"),
    ("mon-sun 00:00-24:00", "mon-sun 00:00-24:00"),
    ("mon-fri 09:00-17:00; sat 10:00-14:00", "mon-fri 09:00-17:00; sat 10:00-14:00"),
    ("sat-sun closed", "closed"),
])
def test_format_hours_groups_equal_days(spec: str, shortest: str) -> None:
    assert format_hours(parse_hours(spec)) == shortest


def test_format_days() -> None:
    assert format_days([0, 1, 2, 3, 4]) == "mon-fri"
    assert format_days([5, 6, 0, 1]) == "sat-tue"
    assert format_days([0, 2, 3, 4, 6]) == "wed-fri,sun,mon"  # a run that wraps comes last
    assert parse_days(format_days([0, 2, 3, 4, 6])) == {0, 2, 3, 4, 6}


def test_weekly_json_round_trip() -> None:
    w = parse_hours("mon-thu 08:30-12:00,13:00-17:00; fri 08:30-14:00")
    data = weekly_to_json(w)
    assert data["mon"] == [["08:30", "12:00"], ["13:00", "17:00"]]
    assert "sat" not in data
    assert weekly_from_json(data) == w
    assert weekly_from_json({"tue": ["09:00-17:00"]})[1] == iv("09:00-17:00")
    with pytest.raises(CalendarError, match="unknown weekday key"):
        weekly_from_json({"monday": []})


# ----------------------------------------------------------------------------- closures, days


def test_closures() -> None:
    assert parse_closure("2026-12-24..2026-12-31") == (date(2026, 12, 24), date(2026, 12, 31))
    assert parse_closure("2026-12-24") == (date(2026, 12, 24), date(2026, 12, 24))
    assert parse_closures("2026-12-24 .. 2026-12-26, 2027-01-01; 2027-01-06") == [
        (date(2026, 12, 24), date(2026, 12, 26)), (date(2027, 1, 1), date(2027, 1, 1)),
        (date(2027, 1, 6), date(2027, 1, 6))]
    assert parse_closures("none") == []
    with pytest.raises(CalendarError, match=r'^closure "2026-12-31..2026-12-24": ends before'):
        parse_closure("2026-12-31..2026-12-24")
    with pytest.raises(CalendarError, match=r'"2026-02-30" is not a real date; expected'):
        parse_closure("2026-02-30")
    with pytest.raises(CalendarError, match=r'"24.12.2026" is not a date; expected YYYY-MM-DD'):
        parse_closure("24.12.2026")
    with pytest.raises(CalendarError, match=r'^closures "2026-12-24 x": closure "x": "x" is '):
        parse_closures("2026-12-24 x")


def test_special_days() -> None:
    assert parse_special_day("2026-12-24=09:00-12:00") == (date(2026, 12, 24), iv("09:00-12:00"))
    assert parse_special_day("2026-12-24=closed") == (date(2026, 12, 24), ())
    assert parse_special_days("2026-12-24=09:00-12:00, 13:00-14:00 2026-12-31=closed") == {
        date(2026, 12, 24): iv("09:00-12:00", "13:00-14:00"), date(2026, 12, 31): ()}
    assert parse_special_days("none") == {}
    for bad, message in [
        ("2026-12-24", "expected YYYY-MM-DD=HH:MM-HH:MM[,HH:MM-HH:MM] or YYYY-MM-DD=closed"),
        ("2026-12-24=", "no hours after '='"),
        ("2026-12-24=9-12", '"9" is not a time; expected HH:MM'),
        ("2026-12-24=12:00-09:00", "is empty or outside the day"),
        ("24.12.=closed", '"24.12." is not a date'),
    ]:
        with pytest.raises(CalendarError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_special_day(bad)
    with pytest.raises(CalendarError, match="2026-12-24 is given twice"):
        parse_special_days("2026-12-24=closed; 2026-12-24=09:00-10:00")


def test_holidays() -> None:
    assert parse_holidays("LV") == ("LV", None)
    assert parse_holidays("us-ny") == ("US", "NY")
    assert parse_holidays("none") == (None, None)
    with pytest.raises(CalendarError, match=r'^holidays "XX": "XX" is not a country'):
        parse_holidays("XX")
    with pytest.raises(CalendarError, match=r'"ZZ" is not a subdivision of US; known: AK'):
        parse_holidays("US-ZZ")


# ----------------------------------------------------------------------------- company edits


NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def test_a_new_company_starts_with_the_default_hours() -> None:
    values = CalendarChange(timezone="Europe/Riga").apply(None)
    assert values["weekly_hours"] == weekly_to_json(parse_hours(DEFAULT_HOURS))
    assert values["closures"] == [] and values["special_days"] == {}
    with pytest.raises(CalendarError, match="a new company needs one"):
        CalendarChange(hours=parse_hours("mon 09:00-10:00")).apply(None)


def test_changes_apply_in_order() -> None:
    current = CalendarChange(timezone="Europe/Riga").apply(None)
    current["closures"] = [{"start": "2026-12-24", "end": "2026-12-26", "reason": "x-mas"}]
    new = CalendarChange(hours=parse_hours("mon-sun 09:00-17:00"), days_off=parse_days("sat,sun"),
                         add_closures=[parse_closure("2026-12-24..2026-12-26"),
                                       parse_closure("2027-01-01")],
                         set_special_days=dict([parse_special_day("2026-12-27=10:00-12:00")]),
                         holidays=("LV", None)).apply(current)
    assert format_hours(weekly_from_json(new["weekly_hours"])) == "mon-fri 09:00-17:00"
    assert new["closures"] == [{"start": "2026-12-24", "end": "2026-12-26", "reason": "x-mas"},
                               {"start": "2027-01-01", "end": "2027-01-01"}]
    assert new["special_days"] == {"2026-12-27": [["10:00", "12:00"]]}
    assert new["holiday_country"] == "LV"
    cleared = CalendarChange(clear_closures=True, clear_special_days=True,
                             days_off=frozenset({0})).apply(new)
    assert cleared["closures"] == [] and cleared["special_days"] == {}
    assert format_hours(weekly_from_json(cleared["weekly_hours"])) == "tue-fri 09:00-17:00"
    cal = checked_calendar(cleared, name="x", now=NOW)
    assert not cal.is_open(datetime(2026, 12, 7, 10, tzinfo=UTC))  # a Monday
    assert CalendarChange().is_empty() and not CalendarChange(clear_closures=True).is_empty()


def test_checked_calendar_refuses_one_that_never_opens() -> None:
    values = CalendarChange(timezone="UTC", hours=parse_hours("closed")).apply(None)
    with pytest.raises(CalendarError, match="has no open time"):
        checked_calendar(values, name="shut", now=NOW)
    values = CalendarChange(timezone="UTC", closures=[parse_closure("2026-01-01..2030-01-01")]
                            ).apply(None)
    with pytest.raises(CalendarError, match="never opens"):
        checked_calendar(values, name="long", now=NOW)


def test_day_notes() -> None:
    cal = CompanyCalendar.from_config(
        timezone="Europe/Riga", weekly_hours=weekly_to_json(parse_hours("mon-fri 09:00-17:00")),
        holiday_country="LV", closures=[{"start": "2026-12-28", "end": "2026-12-31"}],
        special_days={"2026-12-27": [["10:00", "14:00"]]})
    assert day_notes(cal, date(2026, 12, 23)) == []
    assert day_notes(cal, date(2026, 12, 25)) == ["holiday: Christmas Day"]
    assert day_notes(cal, date(2026, 12, 26)) == ["day off", "holiday: Second Day of Christmas"]
    assert day_notes(cal, date(2026, 12, 27)) == ["special day (instead of: day off)"]
    assert day_notes(cal, date(2026, 12, 29)) == ["closure 2026-12-28..2026-12-31"]


# ----------------------------------------------------------------------------- properties


@st.composite
def day_intervals(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    """Sorted disjoint intervals of one day (touching ones too), minutes 0..1440."""
    points = sorted(draw(st.lists(st.integers(0, 1440), unique=True, max_size=8)))
    if len(points) % 2:
        points = points[:-1]
    pairs = list(zip(points[::2], points[1::2], strict=True))
    if draw(st.booleans()) and len(pairs) >= 2:  # make two of them touch
        (a, _), (_, d) = pairs[0], pairs[1]
        mid = draw(st.integers(a + 1, d - 1)) if d - a >= 2 else None
        if mid is not None:
            pairs[:2] = [(a, mid), (mid, d)]
    return tuple(pairs)


#: weeks where equal days are likely (a few shapes shared by several days)
weeks = st.lists(day_intervals(), min_size=1, max_size=3).flatmap(
    lambda shapes: st.lists(st.sampled_from([*shapes, ()]), min_size=7, max_size=7)
).map(tuple) | st.lists(day_intervals(), min_size=7, max_size=7).map(tuple)


@PROPS
@given(weeks)
def test_format_then_parse_is_the_identity(weekly: tuple[tuple[tuple[int, int], ...], ...]) -> None:
    spec = format_hours(weekly)
    assert parse_hours(spec) == weekly, spec
    # canonical: formatting what it parsed gives the same text
    assert format_hours(parse_hours(spec)) == spec
    # never longer than one group per open day
    naive = "; ".join(f"{WEEKDAY_NAMES[d]} {format_intervals(iv_)}"
                      for d, iv_ in enumerate(weekly) if iv_) or "closed"
    assert len(spec) <= len(naive)
    # the calendar reads the stored JSON back to the same hours
    cal = CompanyCalendar.from_config(timezone="UTC", weekly_hours=weekly_to_json(weekly))
    assert cal.weekly == weekly


GRAMMAR = "monthuwedfrisatsunclod0123456789:-,;. =\t"


@PROPS
@given(st.text(max_size=60) | st.text(alphabet=GRAMMAR, max_size=60))
def test_parsers_raise_only_calendar_errors(text: str) -> None:
    for parse in (parse_hours, parse_days, parse_closure, parse_closures, parse_special_day,
                  parse_special_days, parse_holidays):
        try:
            parse(text)
        except CalendarError:
            pass


@PROPS
@given(st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun", "mon-fri",
                                 "sat-sun", "fri-mon", "wed,fri"]), min_size=1, max_size=4),
       st.sampled_from(["09:00-17:00", "08:30-12:00,13:00-17:00", "closed", "00:00-24:00"]))
def test_parse_format_parse(day_items: list[str], hours: str) -> None:
    spec = f"{','.join(day_items)} {hours}"
    weekly = parse_hours(spec)
    assert parse_hours(format_hours(weekly)) == weekly
