"""Helpers for the ops tests: read PromQL out of deploy/, substitute Grafana variables, and
split alert expressions into the signals they compare.

An alert expression such as `rate(x[5m]) > 0.2` returns nothing while all is well, so "it
returned a result" cannot be asked of the whole expression. Instead the test asks it of every
operand the expression compares or combines (`rate(x[5m])`): those must return series, which
proves the metric names and labels the rule relies on exist in the dialer's output. The whole
expression must still evaluate without error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
RULES_DIR = DEPLOY / "prometheus" / "rules"
DATASOURCES_FILE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref}"


@dataclass(frozen=True)
class RuleExpr:
    file: str
    name: str  # alert or record name
    expr: str


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for p in panels:
        yield p
        yield from iter_panels(p.get("panels", []))


def dashboard_queries() -> list[DashboardQuery]:
    out = []
    for path in dashboard_files():
        dash = json.loads(path.read_text(encoding="utf-8"))
        for panel in iter_panels(dash["panels"]):
            for target in panel.get("targets", []):
                out.append(DashboardQuery(path.name, panel["title"], target["refId"],
                                          target["expr"]))
    return out


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_exprs() -> list[RuleExpr]:
    out = []
    for path in rule_files():
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                out.append(RuleExpr(path.name, name, rule["expr"]))
    return out


def grafana_substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace `$name` and `${name}` (and `[[name]]`) the way Grafana does before querying."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", repl, expr)


def grafana_regex_value(value: str) -> str:
    """A variable value as Grafana's Prometheus data source puts it into `=~"..."`.

    Regex metacharacters get a regex backslash, written as `\\\\` inside the PromQL
    string literal (Grafana's prometheusSpecialRegexEscape); other characters stay as they are.
    """
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


_WORD_OPS = ("and", "or", "unless")
_CMP_OPS = ("==", "!=", ">=", "<=", ">", "<")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
#: modifiers after a binary operator: `bool`, `on(...)`, `ignoring(...)`,
#: `group_left(...)`, `group_right(...)`
_MODIFIER = re.compile(r"^\s*(bool\b|(on|ignoring|group_left|group_right)\s*\([^)]*\))\s*")


def _split_top_level(expr: str) -> list[str]:
    """Split on comparison and set operators outside (), {}, [] and string literals."""
    parts: list[str] = []
    depth = 0
    quote: str | None = None
    start = i = 0
    n = len(expr)
    while i < n:
        ch = expr[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
            i += 1
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            op_len = 0
            for op in _CMP_OPS:
                if expr.startswith(op, i):
                    op_len = len(op)
                    break
            if not op_len:
                for op in _WORD_OPS:
                    before = expr[i - 1] if i else " "
                    after = expr[i + len(op)] if i + len(op) < n else " "
                    if (expr.startswith(op, i) and not (before.isalnum() or before == "_")
                            and not (after.isalnum() or after == "_")):
                        op_len = len(op)
                        break
            if op_len:
                parts.append(expr[start:i])
                i += op_len
                m = _MODIFIER.match(expr[i:])
                while m:
                    i += m.end()
                    m = _MODIFIER.match(expr[i:])
                start = i
                continue
        i += 1
    parts.append(expr[start:])
    return parts


def _strip_parens(expr: str) -> str:
    """Remove parentheses that enclose the whole expression."""
    e = expr.strip()
    while e.startswith("(") and e.endswith(")"):
        depth = 0
        for i, ch in enumerate(e):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(e) - 1:
                return e  # the first "(" closes before the end: not enclosing
        e = e[1:-1].strip()
    return e


def signals(expr: str) -> list[str]:
    """The vector operands an expression compares or combines, outermost operators first.

    `absent(x)` yields `x` (absent() is empty exactly when x has data). Scalar literals are
    dropped. Operands that are themselves comparisons are split further.
    """
    out: list[str] = []
    parts = _split_top_level(_strip_parens(expr))
    if len(parts) == 1:
        e = _strip_parens(parts[0])
        m = re.fullmatch(r"absent\s*\((.*)\)", e, flags=re.S)
        if m:
            return signals(m.group(1))
        return [] if _NUMBER.match(e) else [" ".join(e.split())]
    for part in parts:
        out.extend(signals(part))
    return out
