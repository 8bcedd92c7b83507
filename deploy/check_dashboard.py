"""Evaluate every panel of the Grafana dashboard through Prometheus, the way Grafana would.

Where Grafana cannot run, this is the check that the dashboard in
deploy/grafana/dashboards/superior-one.json shows something: each panel target's PromQL
has Grafana's variables expanded for a time range, then goes to Prometheus's HTTP API.
A range query gives the points Grafana would draw. Instant queries give the values at
the window's start and end. Run it from the repository root while the platform, a
Prometheus started with deploy/prometheus/prometheus.yml and some traffic (the fleet
simulator, the payments demo) are running:

    .venv/bin/python deploy/check_dashboard.py --prometheus http://127.0.0.1:9090 --window 15m

Per row and panel it prints "moved" (a drawn series took different values in the window
and a series it is computed from changed there), "flat" (data, but no such change) or
"no data". It exits 1 when a row has no panel
that moved and 2 when Prometheus rejects a query (docs/operations.md, "Checking the
dashboard without Grafana").
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent
DASHBOARD = ROOT / "grafana" / "dashboards" / "superior-one.json"
DATASOURCE = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

# --- Grafana's variable expansion --------------------------------------------------------
#
# Grafana's documentation describes these variables: the "Global variables" page
# (grafana.com/docs/grafana/latest/visualizations/dashboards/variables/global-variables/)
# states that $__interval comes from the time range and the graph's width in pixels and
# $__range is the dashboard's range. The Prometheus data source pages define
# $__rate_interval as max($__interval + scrape interval, 4 * scrape interval), the
# scrape interval being the data source's "Scrape interval" setting, 15s by default.
# The exact rules below come from the data source's source code:
#
# * pkg/promlib/models/query.go: calculatePrometheusInterval (the step is the interval,
#   at least range / 11,000), calculateRateInterval, interpolateVariables ($__range in
#   whole seconds, $__rate_interval in Go's Duration.String format such as "1m0s"),
#   AlignTimeRange (range queries start and end on a multiple of the step);
# * pkg/promlib/intervalv2: Calculate (range / max data points, never below the min
#   interval), roundInterval (the table of "nice" steps), FormatDuration ("15s", "1m");
# * the data source's datasource.ts: interpolateQueryExpr with
#   prometheusRegularEscape and prometheusSpecialRegexEscape (classic behaviour): a
#   single value escaped for a PromQL string, several values as a (a|b) regex.
#
# Dashboard variables are written ${name}, $name or [[name]]; a ":format" suffix is
# refused rather than guessed at (this dashboard uses none).

DEFAULT_SCRAPE_INTERVAL_S = 15.0  # Grafana's default for a Prometheus data source
SAFE_RESOLUTION = 11_000  # Prometheus refuses more points per series in a range query

# roundInterval: (largest raw interval, step it becomes), in seconds.
_NICE_STEPS: tuple[tuple[float, float], ...] = (
    (0.010, 0.001), (0.015, 0.010), (0.035, 0.020), (0.075, 0.050), (0.150, 0.100),
    (0.350, 0.200), (0.750, 0.500), (1.5, 1.0), (3.5, 2.0), (7.5, 5.0), (12.5, 10.0),
    (17.5, 15.0), (25.0, 20.0), (45.0, 30.0), (90.0, 60.0), (210.0, 120.0),
    (450.0, 300.0), (750.0, 600.0), (1050.0, 900.0), (1500.0, 1200.0), (2700.0, 1800.0),
    (5400.0, 3600.0), (9000.0, 7200.0), (16200.0, 10800.0), (32400.0, 21600.0),
    (86400.0, 43200.0), (172800.0, 86400.0), (604800.0, 86400.0), (1814400.0, 604800.0),
)  # fmt: skip
_MONTH_S, _YEAR_S = 2_592_000.0, 31_536_000.0

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
           "y": _YEAR_S}  # fmt: skip
_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")


def parse_duration(text: str) -> float:
    """Seconds of a Grafana or Prometheus duration such as ``15s``, ``1m30s`` or ``90``."""
    if re.fullmatch(r"\d+", text):
        return float(text)  # Grafana reads a bare number as seconds
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def round_interval(seconds: float) -> float:
    for bound, step in _NICE_STEPS:
        if seconds <= bound:
            return step
    return _MONTH_S if seconds < 3_628_800.0 else _YEAR_S


def format_interval(seconds: float) -> str:
    """$__interval's text: the largest whole unit, as Grafana's FormatDuration does."""
    for unit, size in (("y", _YEAR_S), ("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(1, int(seconds * 1000))}ms"


def go_duration(seconds: float) -> str:
    """$__rate_interval's text: Go's time.Duration.String (``1m0s``, ``1h2m0s``, ``500ms``)."""
    ms = round(seconds * 1000)
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest // 1000}" if rest % 1000 == 0 else f"{rest / 1000:g}"
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class QueryTiming:
    """The values Grafana derives from a time range for one panel's queries."""

    start: float
    end: float
    step_s: float
    rate_interval_s: float

    @property
    def range_s(self) -> int:
        return round(self.end - self.start)

    @property
    def aligned(self) -> tuple[float, float]:
        """Start and end of the range query, rounded down to the step (AlignTimeRange)."""
        return (
            math.floor(self.start / self.step_s) * self.step_s,
            math.floor(self.end / self.step_s) * self.step_s,
        )

    def builtins(self) -> dict[str, str]:
        return {
            "__interval": format_interval(self.step_s),
            "__interval_ms": str(round(self.step_s * 1000)),
            "__rate_interval": go_duration(self.rate_interval_s),
            "__rate_interval_ms": str(round(self.rate_interval_s * 1000)),
            "__range": f"{self.range_s}s",
            "__range_s": str(self.range_s),
            "__range_ms": str(round((self.end - self.start) * 1000)),
        }


def query_timing(
    start: float,
    end: float,
    *,
    max_data_points: int,
    min_interval_s: float | None = None,
    scrape_interval_s: float = DEFAULT_SCRAPE_INTERVAL_S,
) -> QueryTiming:
    """Step, $__interval and $__rate_interval for a panel over [start, end].

    ``min_interval_s`` is the panel's "Min interval" (query options); unset, the data
    source's scrape interval is the floor.
    """
    floor = min_interval_s if min_interval_s is not None else scrape_interval_s
    raw = (end - start) / max_data_points
    interval = floor if raw < floor else round_interval(raw)
    step = max(interval, round_interval((end - start) / SAFE_RESOLUTION))
    rate = max(interval + scrape_interval_s, 4 * scrape_interval_s)
    return QueryTiming(start, end, step, rate)


def dashboard_variables(
    dashboard: Mapping[str, Any], datasource_uid: str
) -> dict[str, str | list[str]]:
    """Current values of the dashboard's template variables.

    A query variable would need Prometheus's label values; this dashboard has none, so
    such a variable stops the check instead of being guessed.
    """
    values: dict[str, str | list[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name, kind = variable["name"], variable.get("type")
        current = (variable.get("current") or {}).get("value")
        if kind == "datasource":
            values[name] = datasource_uid
        elif kind in {"constant", "textbox", "custom", "interval"}:
            options = [o["value"] for o in variable.get("options", [])]
            default = str(variable.get("query", "")).split(",")[0]
            values[name] = current if current is not None else (options or [default])[0]
        else:
            raise ValueError(f"variable ${name} of type {kind!r} is not expanded by this check")
    return values


def _regex_escape(value: str) -> str:
    # Doubled once for the regex and once for the PromQL string around it.
    value = value.replace("\\", "\\" * 4)
    return re.sub(r"[$^*{}\[\]+?.()|]", lambda m: "\\\\" + m.group(0), value)


def expand(expr: str, timing: QueryTiming, variables: Mapping[str, str | list[str]]) -> str:
    """Return the PromQL that Grafana sends to Prometheus for ``expr``."""
    known = {**timing.builtins(), **variables}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3) or match.group(5)
        if name not in known:
            raise ValueError(f"unknown variable ${name} in {expr!r}")
        if match.group(2) or match.group(4):
            raise ValueError(f"format of ${name} in {expr!r} is not expanded by this check")
        value = known[name]
        if isinstance(value, list):
            return "(" + "|".join(_regex_escape(v) for v in value) + ")"
        return value.replace("\\", "\\\\").replace("'", "\\\\'")

    return _VARIABLE.sub(substitute, expr)


# --- the dashboard -------------------------------------------------------------------------


@dataclass
class Target:
    ref_id: str
    expr: str
    legend: str


@dataclass
class Panel:
    title: str
    targets: list[Target]
    width: int  # grid columns of 24
    max_data_points: int | None
    min_interval_s: float | None


@dataclass
class Row:
    title: str
    panels: list[Panel] = field(default_factory=list)


def _panel(raw: Mapping[str, Any]) -> Panel:
    interval = raw.get("interval")
    return Panel(
        title=raw.get("title", ""),
        targets=[
            Target(t.get("refId", "?"), t["expr"], t.get("legendFormat", ""))
            for t in raw.get("targets", [])
            if not t.get("hide") and t.get("expr")
        ],
        width=int(raw.get("gridPos", {}).get("w", 24)),
        max_data_points=raw.get("maxDataPoints"),
        min_interval_s=parse_duration(interval) if interval else None,
    )


def dashboard_rows(dashboard: Mapping[str, Any]) -> list[Row]:
    """Rows with their panels; a collapsed row keeps its panels inside itself."""
    rows: list[Row] = []
    for raw in dashboard["panels"]:
        if raw["type"] == "row":
            rows.append(Row(raw["title"], [_panel(p) for p in raw.get("panels", [])]))
            continue
        if not rows:
            rows.append(Row("(no row)"))
        rows[-1].panels.append(_panel(raw))
    return rows


def dashboard_expressions(
    dashboard: Mapping[str, Any], timing: QueryTiming, datasource_uid: str
) -> list[str]:
    """Return every target's expression, expanded for ``timing`` (used by the tests)."""
    variables = dashboard_variables(dashboard, datasource_uid)
    return [
        expand(target.expr, timing, variables)
        for row in dashboard_rows(dashboard)
        for panel in row.panels
        for target in panel.targets
    ]


def datasource_settings(path: Path = DATASOURCE) -> tuple[str, float]:
    """uid and scrape interval of the provisioned Prometheus data source."""
    source = yaml.safe_load(path.read_text())["datasources"][0]
    interval = (source.get("jsonData") or {}).get("timeInterval")
    return source["uid"], parse_duration(interval) if interval else DEFAULT_SCRAPE_INTERVAL_S


# --- Prometheus ----------------------------------------------------------------------------

SeriesKey = tuple[tuple[str, str], ...]


class QueryError(Exception):
    pass


class Prometheus:
    def __init__(self, base_url: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        response = self._http.get(path, params=params)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise QueryError(f"{response.status_code} {body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def instant(self, expr: str, at: float) -> dict[SeriesKey, float]:
        result = self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        return {_key(s["metric"]): float(s["value"][1]) for s in result}

    def range(
        self, expr: str, start: float, end: float, step_s: float
    ) -> dict[SeriesKey, dict[float, float]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s}"}
        result = self._get("/api/v1/query_range", params)
        return {
            _key(s["metric"]): {round(float(t), 3): float(v) for t, v in s["values"]}
            for s in result
        }


def _key(metric: Mapping[str, str]) -> SeriesKey:
    return tuple(sorted(metric.items()))


# --- the verdicts --------------------------------------------------------------------------


@dataclass
class TargetResult:
    ref_id: str
    expr: str
    status: str  # moved, flat, no data, error
    series: int = 0
    detail: str = ""


@dataclass
class PanelResult:
    title: str
    status: str
    targets: list[TargetResult]


@dataclass
class RowResult:
    title: str
    moved: bool
    panels: list[PanelResult]


def _legend(template: str, key: SeriesKey) -> str:
    labels = dict(key)
    if not template:
        return "{" + ",".join(f'{k}="{v}"' for k, v in key) + "}"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def _drawn(value: float | None) -> float:
    # Grafana draws nothing for a missing sample or NaN (0/0, a quantile of no
    # observations). Counting that gap as 0 makes a series that appears at 0 "flat"
    # and one that appears at any other value, or leaves one, "moved".
    return 0.0 if value is None or math.isnan(value) else value


def _spread(line: Sequence[float]) -> float:
    if all(v == line[0] for v in line):
        return 0.0
    spread = max(line) - min(line)
    return spread if math.isfinite(spread) else math.inf


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


# PromQL words that are not series names: grouping clauses (with their label lists),
# operators and modifiers.
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
# A name with its matchers, or a bare matcher set, range or string to skip.
_NAME_OR_SELECTOR = re.compile(
    r'\b([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*(\()?|\{[^}]*\}|\[[^\]]*\]|"[^"]*"'
)


def series_selectors(expr: str) -> list[str]:
    """Return the series selectors in ``expr``, like ``so_x_total{route!~"/metrics"}``."""
    found: list[str] = []
    for match in _NAME_OR_SELECTOR.finditer(_GROUPING.sub(" ", expr)):
        name, matchers, call = match.groups()
        if name and not call and name.lower() not in _KEYWORDS and name not in found:
            found.append(name + (matchers or ""))
    return found


def data_changed(expr: str, timing: QueryTiming, prom: Prometheus) -> bool:
    """Tell whether a series the expression reads took a new value inside the window.

    A drawn line can move with no new data: increase() over a range longer than the
    series has existed extrapolates differently at each step, and a value ageing out of
    a [1h] range moves the line too. Neither is traffic.
    """
    window = f"{math.ceil(timing.end - timing.start)}s"
    return any(
        value > 0
        for selector in series_selectors(expr)
        for value in prom.instant(f"changes({selector}[{window}])", timing.end).values()
    )


def judge_target(target: Target, expr: str, timing: QueryTiming, prom: Prometheus) -> TargetResult:
    try:
        points = prom.range(expr, *timing.aligned, timing.step_s)
        at_start = prom.instant(expr, timing.start)
        at_end = prom.instant(expr, timing.end)
    except QueryError as exc:
        return TargetResult(target.ref_id, expr, "error", detail=str(exc))

    drawn = {
        key: values
        for key, values in points.items()
        if any(not math.isnan(v) for v in values.values())
    }
    if not drawn:
        return TargetResult(target.ref_id, expr, "no data")

    first, last = timing.aligned
    times = [
        round(first + i * timing.step_s, 3) for i in range(int((last - first) / timing.step_s) + 1)
    ]
    lines = {key: [_drawn(values.get(t)) for t in times] for key, values in drawn.items()}
    widest = max(lines, key=lambda key: _spread(lines[key]))
    finite = [v for v in drawn[widest].values() if not math.isnan(v)]
    moved = [key for key, line in lines.items() if _spread(line) > 0]
    detail = (
        f"{len(moved)}/{len(drawn)} series moved; widest {_legend(target.legend, widest)!r}: "
        f"start {_fmt(at_start.get(widest))}, end {_fmt(at_end.get(widest))}, "
        f"drawn {_fmt(min(finite))}..{_fmt(max(finite))} in {len(finite)}/{len(times)} points"
    )
    if moved and not data_changed(expr, timing, prom):
        return TargetResult(
            target.ref_id, expr, "flat", len(drawn), detail + "; no input series changed"
        )
    status = "moved" if moved else "flat"
    return TargetResult(target.ref_id, expr, status, len(drawn), detail)


def unscraped_at_start(prom: Prometheus, start: float, end: float) -> list[str]:
    """Targets scraped at the end but not yet at the start of the window.

    Their series appear inside the window because Prometheus or the process started,
    not because of traffic; the window must begin after that.
    """
    at_start, at_end = prom.instant("up", start), prom.instant("up", end)
    return sorted(
        f"{labels.get('job')} {labels.get('instance')}"
        for labels in map(dict, at_end.keys() - at_start.keys())
    )


def check(
    dashboard: Mapping[str, Any],
    prom: Prometheus,
    *,
    start: float,
    end: float,
    dashboard_width_px: int,
    datasource_uid: str,
    scrape_interval_s: float,
) -> list[RowResult]:
    variables = dashboard_variables(dashboard, datasource_uid)
    results: list[RowResult] = []
    for row in dashboard_rows(dashboard):
        panel_results = []
        for panel in row.panels:
            # Grafana's max data points is the panel's width in pixels.
            points = panel.max_data_points or round(panel.width / 24 * dashboard_width_px)
            timing = query_timing(
                start,
                end,
                max_data_points=points,
                min_interval_s=panel.min_interval_s,
                scrape_interval_s=scrape_interval_s,
            )
            targets = [
                judge_target(t, expand(t.expr, timing, variables), timing, prom)
                for t in panel.targets
            ]
            statuses = {t.status for t in targets}
            status = next(
                (s for s in ("error", "moved", "flat", "no data") if s in statuses), "no data"
            )
            panel_results.append(PanelResult(panel.title, status, targets))
        moved = any(p.status == "moved" for p in panel_results)
        results.append(RowResult(row.title, moved, panel_results))
    return results


def _print(results: list[RowResult], header: str) -> None:
    print(header)
    for row in results:
        moved = sum(p.status == "moved" for p in row.panels)
        verdict = "MOVED" if row.moved else "DID NOT MOVE"
        print(f"\n{row.title}: {verdict} ({moved}/{len(row.panels)} panels moved)")
        for panel in row.panels:
            print(f"  [{panel.status}] {panel.title}")
            for target in panel.targets:
                print(f"      {target.ref_id} {target.status}: {target.detail}".rstrip(": "))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prometheus", default="http://127.0.0.1:9090", help="base URL")
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument(
        "--window", default="15m", help="time range ending at --end, like Grafana's 'Last 15m'"
    )
    parser.add_argument("--end", type=float, default=None, help="Unix time; default now")
    parser.add_argument(
        "--dashboard-width",
        type=int,
        default=1850,
        help="pixels of the 24 grid columns; a panel's max data points is its width",
    )
    parser.add_argument("--report", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    dashboard = json.loads(args.dashboard.read_text())
    datasource_uid, scrape_interval_s = datasource_settings()
    end = args.end if args.end is not None else time.time()
    start = end - parse_duration(args.window)
    prom = Prometheus(args.prometheus)
    try:
        early = unscraped_at_start(prom, start, end)
        if early:
            print(
                f"The window starts before Prometheus scraped {', '.join(early)}: their "
                "series would appear inside it without any traffic. Shorten --window or "
                "wait.",
                file=sys.stderr,
            )
            return 2
        results = check(
            dashboard,
            prom,
            start=start,
            end=end,
            dashboard_width_px=args.dashboard_width,
            datasource_uid=datasource_uid,
            scrape_interval_s=scrape_interval_s,
        )
    finally:
        prom.close()

    span = (
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(start))} to "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(end))}"
    )
    _print(results, f'Dashboard "{dashboard["title"]}", {span} ({args.window})')
    if args.report:
        args.report.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")

    if any(t.status == "error" for r in results for p in r.panels for t in p.targets):
        return 2
    return 0 if all(r.moved for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
