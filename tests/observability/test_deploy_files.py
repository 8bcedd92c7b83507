"""The Prometheus rules and the Grafana dashboard in deploy/ are valid and use only
metrics the code registers; the dashboard passes Grafana's schema (grafana-foundation-sdk);
deploy/check_dashboard.py reads the dashboard as Grafana does."""

from __future__ import annotations

import copy
import enum
import importlib
import json
import re
import shutil
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy import check_dashboard
from deploy.check_dashboard import QueryTiming, query_timing
from grafana_foundation_sdk.cog import plugins as grafana_plugins
from grafana_foundation_sdk.cog import runtime as grafana_runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder as GrafanaEncoder
from grafana_foundation_sdk.models import dashboard as grafana
from grafana_foundation_sdk.models import prometheus as grafana_prometheus
from prometheus_client import REGISTRY

import superior_one.observability.metrics  # registers the families
import superior_one.tracking.fraud  # noqa: F401 - exports every fraud reason at 0
from superior_one.jobs.app import TASK_MODULES, app
from superior_one.tracking.models import FraudReason

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*_test.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "superior-one.json"
DASHBOARD_ROWS = {"API", "Database", "Jobs", "GPS", "Payments", "Business"}
DATASOURCE = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
HOUR = 3600.0
# Names in PromQL that refer to a series: ours (so_...) and recording rules (level:metric:op).
_SERIES_NAME = re.compile(r"\b(so_[a-z0-9_]+|[a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed (Debian package prometheus, which scripts/bootstrap.sh "
    "installs)",
)


def _exposed_series_names() -> set[str]:
    """Every series name the registered families can expose, with or without samples."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "gauge": ("",),
        "summary": ("", "_count", "_sum"),
    }
    return {
        family.name + suffix
        for family in REGISTRY.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def _recorded_names() -> set[str]:
    names: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def _rule_expressions() -> list[str]:
    expressions = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            expressions += [rule["expr"] for rule in group["rules"]]
    return expressions


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _dashboard_expressions() -> list[str]:
    return [
        target["expr"] for panel in _dashboard()["panels"] for target in panel.get("targets", [])
    ]


def _unknown_names(expressions: list[str]) -> set[str]:
    known = _exposed_series_names() | _recorded_names()
    used = {name for expr in expressions for name in _SERIES_NAME.findall(expr)}
    return used - known


# --- Grafana's dashboard schema, from grafana-foundation-sdk's generated models ------------
#
# The models' from_json reads the fields they define, skips the others and copies values
# without checking them. So a field unknown to the schema is missing after a round trip
# through the models, and values are checked here against the models' annotations. A panel
# or query type is known when the SDK's plugins register a model for it.

grafana_plugins.register_default_plugins()


def _schema_problems(raw: dict[str, Any]) -> list[str]:
    """Return what Grafana's dashboard schema rejects in ``raw``, one line per problem."""
    try:
        model = grafana.Dashboard.from_json(raw)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        return [f"dashboard: decoding with Grafana's schema models failed: {error!r}"]
    encoded = json.loads(json.dumps(model, cls=GrafanaEncoder))
    problems = _fields_lost(raw, encoded, "dashboard")
    problems += _type_problems(model, grafana.Dashboard, "dashboard")
    return problems + _panel_problems(model)


def _fields_lost(raw: Any, encoded: Any, path: str) -> list[str]:
    if isinstance(raw, dict) and isinstance(encoded, dict):
        problems = [f"{path}.{key}: not a field of the schema" for key in raw if key not in encoded]
        for key in raw.keys() & encoded.keys():
            problems += _fields_lost(raw[key], encoded[key], f"{path}.{key}")
        return problems
    if isinstance(raw, list) and isinstance(encoded, list) and len(raw) == len(encoded):
        problems = []
        for index, (item, encoded_item) in enumerate(zip(raw, encoded, strict=True)):
            problems += _fields_lost(item, encoded_item, f"{path}[{index}]")
        return problems
    return [] if raw == encoded else [f"{path}: {raw!r} reads back as {encoded!r}"]


def _type_problems(value: Any, hint: Any, path: str) -> list[str]:
    """Return where ``value`` does not match a model annotation.

    None means absent, which the round trip checks. Paths name the models' attributes.
    """
    if value is None:
        return []
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hasattr(value, "to_json") and not isinstance(value, grafana_runtime.UnknownDataquery):
        # A model, also where the annotation is only "object" (panel options, custom
        # field config) or an abstract base (queries).
        if isinstance(hint, type) and hint is not object and not isinstance(value, hint):
            return [f"{path}: expected {hint.__name__}, got {type(value).__name__}"]
        problems = []
        for name, field_hint in typing.get_type_hints(type(value)).items():
            problems += _type_problems(getattr(value, name, None), field_hint, f"{path}.{name}")
        return problems
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        # A model picks its own class, so the problems inside it are the ones reported.
        chosen = [o for o in options if isinstance(o, type) and isinstance(value, o)]
        if len(options) == 1 or chosen:
            return _type_problems(value, (chosen or options)[0], path)
        if any(not _type_problems(value, option, path) for option in options):
            return []
        return [f"{path}: {value!r} is none of {', '.join(map(_hint_name, options))}"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {value!r}"]
        problems = []
        for index, item in enumerate(value):
            problems += _type_problems(item, args[0] if args else Any, f"{path}[{index}]")
        return problems
    if origin is dict:
        return [] if isinstance(value, dict) else [f"{path}: expected an object, got {value!r}"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [member.value for member in hint]
        return [] if value in allowed else [f"{path}: {value!r} is not one of {allowed}"]
    if hint in (int, float, str, bool):
        # JSON has one number type, so an int is a valid float. A bool is not a number.
        accepted: tuple[type, ...] = (int, float) if hint is float else (hint,)
        if isinstance(value, accepted) and (hint is bool or not isinstance(value, bool)):
            return []
        return [f"{path}: expected {hint.__name__}, got {value!r}"]
    return []  # Any, object and raw JSON the schema leaves open


def _hint_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _panel_problems(model: grafana.Dashboard) -> list[str]:
    """Return panels of an unknown type, without data source or targets, or with a
    target that is not a Prometheus query with a refId and an expression."""
    panels: list[grafana.Panel] = []
    for panel in model.panels or []:
        if isinstance(panel, grafana.RowPanel):
            panels += panel.panels  # a collapsed row keeps its panels inside itself
        else:
            panels.append(panel)
    known_types = grafana_runtime.Runtime().panelcfg_variants
    problems = []
    for panel in panels:
        name = f"panel {panel.title!r}"
        if panel.type_val not in known_types:
            problems.append(f"{name}: unknown panel type {panel.type_val!r}")
        if panel.datasource is None or not panel.datasource.type_val:
            problems.append(f"{name}: missing datasource")
        if not panel.targets:
            problems.append(f"{name}: missing targets")
        for index, target in enumerate(panel.targets or []):
            if not isinstance(target, grafana_prometheus.Dataquery):
                problems.append(f"{name} target {index}: not a Prometheus query")
            elif not (target.ref_id and target.expr):
                problems.append(f"{name} target {index}: missing refId or expr")
    return problems


class TestPrometheus:
    @needs_promtool
    def test_deploy_rules_pass_promtool_check(self) -> None:
        result = subprocess.run(  # noqa: S603 - fixed command line
            [str(PROMTOOL), "check", "rules", *map(str, RULE_FILES)],
            capture_output=True,
            text=True,
        )

        assert result.returncode == 0, result.stdout + result.stderr

    @needs_promtool
    def test_deploy_scrape_config_passes_promtool_check(self) -> None:
        result = subprocess.run(  # noqa: S603 - fixed command line
            [str(PROMTOOL), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
            capture_output=True,
            text=True,
        )

        assert result.returncode == 0, result.stdout + result.stderr

    @needs_promtool
    def test_deploy_alerts_fire_on_their_unit_scenarios(self) -> None:
        result = subprocess.run(  # noqa: S603 - fixed command line
            [str(PROMTOOL), "test", "rules", *map(str, sorted(UNIT_TESTS))],
            capture_output=True,
            text=True,
        )

        assert result.returncode == 0, result.stdout + result.stderr

    def test_deploy_rules_use_only_registered_metrics(self) -> None:
        assert _unknown_names(_rule_expressions()) == set()

    def test_deploy_slo_rules_match_their_generator(self) -> None:
        result = subprocess.run(  # noqa: S603 - fixed command line
            [sys.executable, str(PROMETHEUS_DIR / "generate_slo_rules.py"), "--check"],
            capture_output=True,
        )

        assert result.returncode == 0, "run deploy/prometheus/generate_slo_rules.py"


class TestGrafana:
    def test_deploy_dashboard_uses_only_registered_metrics(self) -> None:
        assert _unknown_names(_dashboard_expressions()) == set()

    def test_deploy_dashboard_has_a_row_per_area(self) -> None:
        rows = {panel["title"] for panel in _dashboard()["panels"] if panel["type"] == "row"}

        assert rows >= DASHBOARD_ROWS

    def test_deploy_dashboard_every_row_has_panels(self) -> None:
        counts: dict[str, int] = {}
        current = ""
        for panel in _dashboard()["panels"]:
            if panel["type"] == "row":
                current = panel["title"]
                counts[current] = 0
            else:
                counts[current] += 1

        assert [row for row, count in counts.items() if count == 0] == []

    def test_deploy_unknown_metric_is_reported(self) -> None:
        assert _unknown_names(["rate(so_no_such_metric_total[5m])"]) == {"so_no_such_metric_total"}

    def test_deploy_dashboard_passes_grafana_schema(self) -> None:
        assert _schema_problems(_dashboard()) == []


_DELETE = object()


class TestGrafanaSchemaCheck:
    """_schema_problems rejects a broken copy of the dashboard. panels[1] is a time series."""

    @pytest.mark.parametrize(
        ("edits", "expected"),
        [
            ({("panels", 1, "type"): "timeseriess"}, "unknown panel type 'timeseriess'"),
            ({("panels", 1, "fieldconfig"): {}}, "panels[1].fieldconfig: not a field"),
            ({("panels", 1, "targets", 0, "legend"): "{{route}}"}, "targets[0].legend: not a"),
            ({("panels", 1, "options", "legend", "displayMode"): "lists"}, "'lists' is not one"),
            ({("panels", 1, "gridPos", "w"): "8"}, "grid_pos.w: expected int, got '8'"),
            ({("panels", 1, "targets"): []}, "missing targets"),
            ({("panels", 1, "targets", 0, "expr"): ""}, "missing refId or expr"),
            (
                {
                    ("panels", 1, "datasource"): _DELETE,
                    ("panels", 1, "targets", 0, "datasource"): _DELETE,
                },
                "missing datasource",
            ),
            ({("panels", 1, "datasource", "type"): "loki"}, "target 0: not a Prometheus query"),
        ],
        ids=[
            "panel-type",
            "panel-field",
            "target-field",
            "enum-value",
            "value-type",
            "no-targets",
            "empty-expr",
            "no-datasource",
            "not-prometheus",
        ],
    )
    def test_schema_check_rejects_broken_dashboard(
        self, edits: dict[tuple[str | int, ...], Any], expected: str
    ) -> None:
        broken = copy.deepcopy(_dashboard())
        for path, value in edits.items():
            parent = broken
            for key in path[:-1]:
                parent = parent[key]
            if value is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = value

        problems = _schema_problems(broken)

        assert any(expected in problem for problem in problems), problems


def _expanded_dashboard_expressions(range_s: float) -> list[str]:
    timing = query_timing(0.0, range_s, max_data_points=925)
    return check_dashboard.dashboard_expressions(_dashboard(), timing, "superior-one-prometheus")


class _Prometheus:
    """Answers judge_target's queries from fixed points, one series; ``changes`` is what
    changes() reports for the series behind it."""

    def __init__(self, values: dict[float, float], changes: float) -> None:
        self._values = values
        self._changes = changes

    def range(
        self, expr: str, start: float, end: float, step_s: float
    ) -> dict[check_dashboard.SeriesKey, dict[float, float]]:
        return {(("job", "api"),): self._values} if self._values else {}

    def instant(self, expr: str, at: float) -> dict[check_dashboard.SeriesKey, float]:
        return {(): self._changes} if expr.startswith("changes(") else {}


def _judge(values: dict[float, float], changes: float = 1.0) -> str:
    timing = QueryTiming(start=0.0, end=60.0, step_s=15.0, rate_interval_s=60.0)
    target = check_dashboard.Target("A", "x_total", "")
    prom: Any = _Prometheus(values, changes)
    return check_dashboard.judge_target(target, "x_total", timing, prom).status


class TestDashboardCheck:
    """deploy/check_dashboard.py expands variables as Grafana does (cases from Grafana's
    pkg/promlib/models/prometheus_interval_test.go) and judges a panel by its points."""

    def test_check_interval_is_the_scrape_interval_for_a_short_range(self) -> None:
        assert query_timing(0.0, HOUR, max_data_points=1500).step_s == 15.0

    def test_check_interval_rounds_range_over_points(self) -> None:
        assert query_timing(0.0, 12 * HOUR, max_data_points=1500).step_s == 30.0

    def test_check_interval_rounds_to_half_an_hour_over_thirty_days(self) -> None:
        assert query_timing(0.0, 720 * HOUR, max_data_points=1500).step_s == 1800.0

    def test_check_interval_never_below_a_larger_scrape_interval(self) -> None:
        timing = query_timing(0.0, 48 * HOUR, max_data_points=1500, scrape_interval_s=240.0)

        assert timing.step_s == 240.0

    def test_check_rate_interval_is_interval_plus_one_scrape(self) -> None:
        timing = query_timing(
            0.0, 48 * HOUR, max_data_points=12384, min_interval_s=100.0, scrape_interval_s=30.0
        )

        assert timing.rate_interval_s == 130.0

    def test_check_rate_interval_is_at_least_four_scrapes(self) -> None:
        assert query_timing(0.0, HOUR, max_data_points=925).rate_interval_s == 60.0

    def test_check_expands_builtins_in_grafana_formats(self) -> None:
        timing = query_timing(0.0, 24 * HOUR, max_data_points=925)
        expr = "rate(x[$__rate_interval]) [$__interval] [${__range}] $__range_s"

        assert check_dashboard.expand(expr, timing, {}) == "rate(x[2m15s]) [2m] [86400s] 86400"

    def test_check_expands_a_multi_value_variable_to_a_regex(self) -> None:
        timing = query_timing(0.0, HOUR, max_data_points=925)
        expanded = check_dashboard.expand('x{q=~"$queue"}', timing, {"queue": ["a.b", "c"]})

        assert expanded == r'x{q=~"(a\\.b|c)"}'

    def test_check_rejects_an_unknown_variable(self) -> None:
        timing = query_timing(0.0, HOUR, max_data_points=925)

        with pytest.raises(ValueError, match="nosuch"):
            check_dashboard.expand("rate(x[$nosuch])", timing, {})

    def test_check_series_that_changes_moved(self) -> None:
        assert _judge({0.0: 1.0, 15.0: 1.0, 30.0: 2.0}) == "moved"

    def test_check_series_that_appears_at_zero_is_flat(self) -> None:
        assert _judge({30.0: 0.0, 45.0: 0.0, 60.0: 0.0}) == "flat"

    def test_check_series_that_appears_above_zero_moved(self) -> None:
        assert _judge({45.0: 0.4}) == "moved"

    def test_check_drift_without_new_data_is_flat(self) -> None:
        assert _judge({0.0: 2.013, 15.0: 2.017}, changes=0.0) == "flat"

    def test_check_finds_the_series_selectors_of_an_expression(self) -> None:
        expr = (
            'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="rate(b)"}[1m0s]))) '
            "/ on(job) (b_total or vector(0)) > bool c:d:e offset 5m"
        )

        assert check_dashboard.series_selectors(expr) == [
            'a_bucket{x="rate(b)"}',
            "b_total",
            "c:d:e",
        ]

    def test_check_nan_only_series_is_no_data(self) -> None:
        assert _judge({0.0: float("nan"), 15.0: float("nan")}) == "no data"

    def test_check_datasource_scrape_interval_matches_prometheus(self) -> None:
        scrape = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())["global"]

        assert check_dashboard.datasource_settings(DATASOURCE) == (
            "superior-one-prometheus",
            check_dashboard.parse_duration(scrape["scrape_interval"]),
        )

    @needs_promtool
    @pytest.mark.parametrize("range_s", [HOUR, 24 * HOUR, 30 * 24 * HOUR])
    def test_check_expanded_dashboard_expressions_parse(
        self, range_s: float, tmp_path: Path
    ) -> None:
        rules = [
            {"record": f"dashboard:expr_{index}:check", "expr": expr}
            for index, expr in enumerate(_expanded_dashboard_expressions(range_s))
        ]
        path = tmp_path / "dashboard.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))

        result = subprocess.run(  # noqa: S603 - fixed command line
            [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
        )

        assert result.returncode == 0, result.stdout + result.stderr


class TestFirstEvents:
    """Labelled series that dashboard panels and alerts rate() exist at 0 before their
    first event: Prometheus cannot see the increment that creates a series."""

    def test_payments_export_both_outcomes_before_any_payment(self) -> None:
        values = [
            REGISTRY.get_sample_value("so_payments_total", {"outcome": o})
            for o in ("succeeded", "failed")
        ]

        assert None not in values

    def test_fraud_flags_export_every_reason(self) -> None:
        missing = [
            reason.value
            for reason in FraudReason
            if REGISTRY.get_sample_value("so_fraud_flags_total", {"reason": reason.value}) is None
        ]

        assert missing == []

    def test_job_counters_export_every_registered_task(self) -> None:
        for module in TASK_MODULES:
            importlib.import_module(module)
        families = ("so_jobs_deferred_total", "so_job_retries_total", "so_job_failures_total")

        missing = [
            (family, task.name)
            for task in app.tasks.values()
            if task.func.__module__.startswith("superior_one.")  # not procrastinate's own
            for family in families
            if REGISTRY.get_sample_value(family, {"task": task.name}) is None
        ]

        assert missing == []
