"""Compliance presets: what a campaign's `calling_window` preset demands beyond the callee's
hours (docs/compliance.md). The data is scheduling/presets.toml; this module reads its
compliance part and applies it:

* `check_campaign` names every campaign setting that is looser than its preset allows (the
  config check and `dialer run` refuse such a campaign, naming the key);
* `effective_abandon` clamps a stored campaign's abandon settings to the preset at run time,
  so a row written by some other path (SQL, an older version) cannot run looser;
* `regional_windows` gives the stricter presets that apply by the callee's subdivision
  (a US number in Florida gets `us_fl` inside a `us_federal` campaign);
* the UK's extra rules: AMD false positives counted as abandons, the 72 h lock-out after an
  abandoned call and the 24 h gap after a machine.

    p = compliance_preset("uk")
    problems = check_campaign(p, abandon_cap=0.05, abandon_window="rolling_30d",
                              abandon_grace_s=2.0, caller_id="+442071234567")
    # ["abandon_cap: 0.05 is over the uk preset's 0.03 (Ofcom, ...)", ...]
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType

from common.vocabulary import AbandonWindow
from scheduling.calendar import CalendarError
from scheduling.windows import PRESETS, CallingWindow, jurisdiction_for_number, preset_data

__all__ = [
    "AbandonLimits",
    "CompliancePreset",
    "EffectiveAbandon",
    "caller_id_problem",
    "check_campaign",
    "compliance_preset",
    "effective_abandon",
    "regional_windows",
    "window_for_number",
]

#: caller IDs a person cannot usefully call back (premium or shared cost, unknown type)
_NOT_CALLABLE = {
    PhoneNumberType.PREMIUM_RATE: "premium rate",
    PhoneNumberType.SHARED_COST: "shared cost",
    PhoneNumberType.UNKNOWN: "not a known number type",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class AbandonLimits:
    """The loosest abandoned-call settings a preset allows."""

    cap_max: float
    windows: frozenset[AbandonWindow]
    grace_s_max: float
    count_amd_false_positives: bool = False
    #: the default estimate of people AMD classes as machines (a campaign may set its own)
    amd_false_positive_rate: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CompliancePreset:
    name: str
    title: str
    window: CallingWindow
    #: subdivision ("US-FL") -> the stricter preset's name
    regions: Mapping[str, str] = field(default_factory=dict)
    abandon: AbandonLimits | None = None
    abandon_lockout: timedelta | None = None
    machine_redial_gap: timedelta | None = None
    caller_id_callable: bool = False
    #: rule -> where it comes from
    sources: Mapping[str, str] = field(default_factory=dict)


def _preset_from_data(name: str, data: Mapping[str, Any]) -> CompliancePreset:
    ab = data.get("abandon")
    limits = None
    if ab is not None:
        try:
            limits = AbandonLimits(
                cap_max=float(ab["cap_max"]),
                windows=frozenset(AbandonWindow(w) for w in ab["windows"]),
                grace_s_max=float(ab["grace_s_max"]),
                count_amd_false_positives=bool(ab.get("count_amd_false_positives", False)),
                amd_false_positive_rate=float(ab.get("amd_false_positive_rate", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CalendarError(f"preset {name!r}: abandon needs cap_max, windows "
                                f"({[w.value for w in AbandonWindow]}) and grace_s_max: {e}"
                                ) from e
    regions = dict(data.get("regions") or {})
    for sub, target in regions.items():
        if target not in PRESETS:
            raise CalendarError(f"preset {name!r}: region {sub} names unknown preset {target!r}")

    def hours(key: str) -> timedelta | None:
        v = data.get(key)
        return None if v is None else timedelta(hours=float(v))

    return CompliancePreset(
        name=name, title=str(data.get("title", name)), window=PRESETS[name], regions=regions,
        abandon=limits, abandon_lockout=hours("abandon_lockout_h"),
        machine_redial_gap=hours("machine_redial_gap_h"),
        caller_id_callable=bool(data.get("caller_id_callable", False)),
        sources=dict(data.get("sources") or {}),
    )


@functools.cache
def _all() -> dict[str, CompliancePreset]:
    return {name: _preset_from_data(name, data) for name, data in preset_data().items()}


def compliance_preset(name: str) -> CompliancePreset:
    """A preset by name; the error lists the valid names."""
    try:
        return _all()[name]
    except KeyError:
        raise CalendarError(
            f"unknown compliance preset {name!r}; choose one of {sorted(_all())}") from None


def regional_windows(preset: CompliancePreset) -> dict[str, CallingWindow]:
    """Jurisdiction ("US-FL") -> its stricter window, for `CallingRules.windows`."""
    return {sub: PRESETS[target] for sub, target in preset.regions.items()}


def window_for_number(preset_name: str, phone_e164: str | None) -> CallingWindow:
    """The callee window of a campaign's preset for this number: a stricter regional one
    where the number's subdivision has one (a Florida number in a us_federal campaign)."""
    preset = compliance_preset(preset_name)
    if preset.regions and phone_e164:
        sub = jurisdiction_for_number(phone_e164)
        if sub in preset.regions:
            return PRESETS[preset.regions[sub]]
    return preset.window


def caller_id_problem(caller_id: str) -> str | None:
    """Why a person could not call this caller ID back (None: they can)."""
    try:
        num = phonenumbers.parse(caller_id, None)
    except phonenumbers.NumberParseException as e:
        return f"{caller_id!r} is not a phone number ({e})"
    if not phonenumbers.is_valid_number(num):
        return "not a valid, diallable number"
    kind = _NOT_CALLABLE.get(phonenumbers.number_type(num))
    return f"a {kind} number cannot be the caller ID" if kind else None


def check_campaign(preset: CompliancePreset, *, abandon_cap: float, abandon_window: str,
                   abandon_grace_s: float, caller_id: str) -> list[str]:
    """Each campaign setting looser than `preset` allows, as "key: what is wrong"."""
    out: list[str] = []
    ab = preset.abandon
    if ab is not None:
        # the citation only (its explanation after ": " is in the presets file and docs)
        src = preset.sources.get("abandon", "").split(": ", 1)[0]
        why = f" ({src})" if src else ""
        if abandon_cap > ab.cap_max:
            out.append(f"abandon_cap: {abandon_cap:g} is over the {preset.name} preset's "
                       f"{ab.cap_max:g}{why}")
        if AbandonWindow(abandon_window) not in ab.windows:
            out.append(f"abandon_window: {abandon_window} is longer than the {preset.name} "
                       f"preset allows; use one of {sorted(w.value for w in ab.windows)}")
        if abandon_grace_s > ab.grace_s_max:
            out.append(f"abandon_grace_s: {abandon_grace_s:g} s is over the {preset.name} "
                       f"preset's {ab.grace_s_max:g} s")
    if preset.caller_id_callable:
        problem = caller_id_problem(caller_id)
        if problem:
            out.append(f"caller_id: {problem} (the {preset.name} preset needs a caller ID "
                       "a person can call back)")
    return out


@dataclass(frozen=True, slots=True)
class EffectiveAbandon:
    cap: float
    window: AbandonWindow
    grace_s: float
    count_amd_false_positives: bool
    amd_false_positive_rate: float
    #: what was tightened, as "key: old -> new" (empty when the campaign was within limits)
    clamped: tuple[str, ...] = ()


def effective_abandon(preset: CompliancePreset, *, cap: float, window: AbandonWindow,
                      grace_s: float, amd_false_positive_rate: float | None
                      ) -> EffectiveAbandon:
    """The abandon settings a campaign runs with: its own, tightened to its preset."""
    ab = preset.abandon
    if ab is None:
        return EffectiveAbandon(cap, window, grace_s, False, amd_false_positive_rate or 0.0)
    clamped: list[str] = []
    if cap > ab.cap_max:
        clamped.append(f"abandon_cap: {cap:g} -> {ab.cap_max:g}")
        cap = ab.cap_max
    if window not in ab.windows:
        # the strictest allowed window: the shortest rolling one, else any allowed
        new = AbandonWindow.ROLLING_24H if AbandonWindow.ROLLING_24H in ab.windows \
            else sorted(ab.windows)[0]
        clamped.append(f"abandon_window: {window.value} -> {new.value}")
        window = new
    if grace_s > ab.grace_s_max:
        clamped.append(f"abandon_grace_s: {grace_s:g} -> {ab.grace_s_max:g}")
        grace_s = ab.grace_s_max
    rate = ab.amd_false_positive_rate if amd_false_positive_rate is None \
        else amd_false_positive_rate
    return EffectiveAbandon(cap, window, grace_s, ab.count_amd_false_positives, rate,
                            tuple(clamped))
