"""The calling rules' refusals as the desktop words them (dialer/web/contact_rules.py): every
ReasonCode comes out of some situation, and its params fill every placeholder that the
page's catalogs use for it (a placeholder without a param would show as `{name}`)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialer.web.contact_rules import (
    CLOSED_CODES,
    ReasonCode,
    Why,
    company_closed_reason,
    window_reason,
)
from scheduling.calendar import CompanyCalendar
from scheduling.windows import CallingWindow

CATALOGS = Path(__file__).resolve().parents[2] / "dialer" / "web" / "static" / "i18n"

#: Riga, Mon-Fri 09:00-12:00 and 13:00-17:00, Latvian holidays, a closure and a special day
CAL = CompanyCalendar.from_config(
    timezone="Europe/Riga",
    weekly_hours={d: [["09:00", "12:00"], ["13:00", "17:00"]]
                  for d in ("mon", "tue", "wed", "thu", "fri")},
    holiday_country="LV", closures=[{"start": "2026-08-03", "end": "2026-08-07"}],
    special_days={"2026-12-31": []}, days_off=("fri",), name="Acme SIA")
#: the French window: 10:00-13:00, 14:00-20:00 Monday to Friday, none on holidays
FR = CallingWindow.from_config("france")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _company() -> dict[ReasonCode, Why | None]:
    return {
        ReasonCode.COMPANY_OPENS_AT: company_closed_reason(CAL, _at("2026-12-02T08:00+02:00")),
        ReasonCode.COMPANY_LUNCH: company_closed_reason(CAL, _at("2026-12-02T12:30+02:00")),
        ReasonCode.COMPANY_CLOSED_AFTER: company_closed_reason(
            CAL, _at("2026-12-02T17:30+02:00")),
        ReasonCode.COMPANY_CLOSED_WEEKDAY: company_closed_reason(
            CAL, _at("2026-12-04T10:00+02:00")),
        ReasonCode.COMPANY_CLOSURE: company_closed_reason(CAL, _at("2026-08-04T10:00+03:00")),
        ReasonCode.COMPANY_HOLIDAY: company_closed_reason(CAL, _at("2026-12-24T10:00+02:00")),
        ReasonCode.COMPANY_SPECIAL_DAY: company_closed_reason(
            CAL, _at("2026-12-31T10:00+02:00")),
    }


def _callee() -> dict[ReasonCode, Why | None]:
    paris = ("Europe/Paris",)
    return {
        ReasonCode.CALLEE_OUTSIDE_HOURS: window_reason(FR, paris, _at("2026-12-02T08:00+01:00")),
        ReasonCode.CALLEE_CLOSED_WEEKDAY: window_reason(FR, paris,
                                                        _at("2026-12-06T11:00+01:00")),
        ReasonCode.CALLEE_HOLIDAY: window_reason(FR, paris, _at("2026-12-25T11:00+01:00")),
        ReasonCode.CALLEE_ZONE_UNKNOWN: window_reason(FR, (), _at("2026-12-02T11:00+01:00")),
    }


def test_each_situation_gives_its_code() -> None:
    for code, why in {**_company(), **_callee()}.items():
        assert why is not None and why.code is code, (code, why)
        assert why.json()["code"] == code.value and why.text


def test_the_codes_carry_what_a_page_needs() -> None:
    company, callee = _company(), _callee()
    assert company[ReasonCode.COMPANY_CLOSED_WEEKDAY].params == {"weekday": "friday"}
    holiday = company[ReasonCode.COMPANY_HOLIDAY]
    assert holiday.params == {"country": "LV", "name": "Christmas Eve"}
    assert holiday.text == "company closed: public holiday (Christmas Eve, LV)"
    assert callee[ReasonCode.CALLEE_HOLIDAY].params["name"] == "Christmas Day"
    outside = callee[ReasonCode.CALLEE_OUTSIDE_HOURS].params
    assert (outside["start"], outside["end"]) == ("10:00", "20:00")
    assert company[ReasonCode.COMPANY_CLOSURE].params == {"from": "2026-08-03",
                                                          "to": "2026-08-07"}
    assert set(company) <= CLOSED_CODES


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_the_params_fill_the_catalogs_wording(lang: str) -> None:
    cat = json.loads((CATALOGS / f"{lang}.json").read_text("utf-8"))
    for code, why in {**_company(), **_callee()}.items():
        assert why is not None
        for group in ("contact_reasons", "closed"):
            text = cat[group].get(code.value)
            if text is None:
                assert group == "closed" and code not in CLOSED_CODES
                continue
            wanted = set(re.findall(r"\{(\w+)\}", text))
            assert wanted <= set(why.params), (lang, group, code, wanted - set(why.params))
