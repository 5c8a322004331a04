"""The tray's tests talk to a stand-in agent: it must answer with the real agent's shapes
(agent/control/payloads.py), or the tray is tested against a protocol nobody speaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.control.payloads import (
    ActivityAnswer,
    CacheStats,
    HealthData,
    RootStatus,
    SettingsAnswer,
    StatusSnapshot,
)
from tests.gui.conftest import DemoAgentProcess


def _missing(answer: dict[str, Any], shape: Any) -> set[str]:
    return set(shape.__required_keys__) - set(answer)


def test_the_demo_agents_status_has_every_key_of_the_real_one(
    demo_agent: DemoAgentProcess, tmp_path: Path
) -> None:
    demo_agent.call("add_root", {"path": str(tmp_path)})
    status = demo_agent.call("status")
    assert _missing(status, StatusSnapshot) == set()
    assert _missing(status["cache"], CacheStats) == set()
    assert status["roots"], "the demo agent mirrors folders"
    for root in status["roots"]:
        assert _missing(root, RootStatus) == set(), root["path"]
    for hub, health in status["health"].items():
        assert _missing(health, HealthData) == set(), hub


def test_the_demo_agents_answers_have_the_real_keys(demo_agent: DemoAgentProcess) -> None:
    assert _missing(demo_agent.call("activity", {"limit": 5}), ActivityAnswer) == set()
    assert _missing(demo_agent.call("config_get"), SettingsAnswer) == set()
