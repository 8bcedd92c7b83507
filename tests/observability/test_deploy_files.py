"""The Prometheus rules and the Grafana dashboard in deploy/ are valid and use only
metrics the code registers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import superior_one.observability.metrics  # noqa: F401 - registers the families

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
UNIT_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*_test.yml"))
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "superior-one.json"
DASHBOARD_ROWS = {"API", "Database", "Jobs", "GPS", "Payments", "Business"}
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
