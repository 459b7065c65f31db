"""The pages' translation catalogs (dialer/web/static/i18n): English and Swedish hold the same
keys with the same placeholders; every key the HTML and JavaScript use exists; every protocol
value the desktop words (error codes, agent states, lead statuses, attempt results) has a
string; the HTML shows no text of its own (everything visible comes from a catalog)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "dialer" / "web" / "static"
SCHEMAS = ROOT / "docs" / "schemas"
LANGS = ("en", "sv")


def _flatten(d: dict, prefix: str = "") -> dict[str, str | dict]:
    out: dict[str, str | dict] = {}
    for k, v in d.items():
        if isinstance(v, dict) and not set(v) <= {"zero", "one", "two", "few", "many", "other"}:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _catalog(lang: str) -> dict[str, str | dict]:
    return _flatten(json.loads((STATIC / "i18n" / f"{lang}.json").read_text("utf-8")))


def _placeholders(v: str | dict) -> set[str]:
    texts = v.values() if isinstance(v, dict) else [v]
    return {m for t in texts for m in re.findall(r"\{(\w+)\}", t)}


def test_languages_have_the_same_keys_and_placeholders() -> None:
    en, sv = _catalog("en"), _catalog("sv")
    assert set(en) == set(sv)
    for key in en:
        assert _placeholders(en[key]) == _placeholders(sv[key]), key
        for v in (en[key], sv[key]):
            texts = v.values() if isinstance(v, dict) else [v]
            assert all(isinstance(t, str) and t.strip() for t in texts), key


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for f in (STATIC / "js").glob("*.js"):
        code = re.sub(r"(?m)^\s*//.*$", "", f.read_text("utf-8"))  # not the comments' examples
        keys |= set(re.findall(r"""\bt\(\s*["']([\w.]+)["']""", code))
    for f in STATIC.glob("*.html"):
        text = f.read_text("utf-8")
        keys |= set(re.findall(r'data-i18n="([\w.]+)"', text))
        for attrs in re.findall(r'data-i18n-attr="([^"]+)"', text):
            keys |= {pair.split(":")[1].strip() for pair in attrs.split(";") if ":" in pair}
    return keys


@pytest.mark.parametrize("lang", LANGS)
def test_every_key_used_exists(lang: str) -> None:
    used = _used_keys()
    assert len(used) > 80
    assert sorted(used - set(_catalog(lang))) == []


def _enum(schema: str, name: str) -> list[str]:
    return json.loads((SCHEMAS / schema).read_text("utf-8"))["$defs"][name]["enum"]


@pytest.mark.parametrize("lang", LANGS)
def test_protocol_values_are_worded(lang: str) -> None:
    cat = _catalog(lang)
    wanted = ([f"errors.{c}" for c in _enum("dialer-error.json", "ErrorCode")]
              + [f"state.{s}" for s in _enum("dialer-state.json", "AgentState")]
              + [f"status.{s}" for s in _enum("dialer-screen_pop.json", "LeadStatus")]
              + [f"result.{r}" for r in _enum("dialer-screen_pop.json", "AttemptResult")])
    assert sorted(k for k in wanted if k not in cat) == []


class _Text(HTMLParser):
    """Text shown by the page itself: outside <kbd>, <script>, <style> and data-i18n elements."""

    SKIP = {"kbd", "script", "style"}
    VOID = {"meta", "link", "input", "br", "img", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        inherited = bool(self.stack and self.stack[-1])
        self.stack.append(inherited or tag in self.SKIP or any(k == "data-i18n" for k, _ in attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if data.strip() and not (self.stack and self.stack[-1]):
            self.found.append(data.strip())


@pytest.mark.parametrize("page", ["login.html", "agent.html", "supervisor.html"])
def test_pages_show_no_text_of_their_own(page: str) -> None:
    p = _Text()
    p.feed((STATIC / page).read_text("utf-8"))
    # a timer's starting value, a close cross and a range dash are not words
    assert [t for t in p.found if t not in {"0:00", "\u2715", "\u2013"}] == []


@pytest.mark.parametrize("lang", LANGS)
def test_every_refusal_code_of_the_server_has_wording(lang: str) -> None:
    """Each ReasonCode the server can give (check-contact, context) is worded in the page's
    language: as a reason (`contact_reasons.<code>`), and, for the company's, as its state
    now (`closed.<code>`); so is every weekday a refusal may name."""
    from dialer.web.contact_rules import CLOSED_CODES, WEEKDAY_KEYS, ReasonCode

    cat = _catalog(lang)
    missing = [f"contact_reasons.{c.value}" for c in ReasonCode]
    missing += [f"closed.{c.value}" for c in CLOSED_CODES]
    missing += [f"weekdays.{d}" for d in WEEKDAY_KEYS]
    assert sorted(k for k in missing if k not in cat) == []
    # and nothing worded that the server no longer sends (a renamed code)
    codes = {c.value for c in ReasonCode}
    stale = [k for k in cat if k.startswith(("contact_reasons.", "closed."))
             and k.split(".", 1)[1] not in codes]
    assert stale == []
    assert CLOSED_CODES and all(c in ReasonCode for c in CLOSED_CODES)


@pytest.mark.parametrize("lang", LANGS)
def test_the_restart_pause_reason_is_worded(lang: str) -> None:
    """An agent restored owing an outcome is paused with OUTCOME_PAUSE: the header words it."""
    from dialer.dispositions import OUTCOME_PAUSE

    assert f"reasons.{OUTCOME_PAUSE}" in _catalog(lang)
