"""ZPL parser and agent settings."""
from __future__ import annotations

from pathlib import Path

import pytest

from aigw_agent.config import AgentConfig, ConfigError, load_config, parse_zpl, split_list

pytestmark = pytest.mark.timeout(20)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def test_zpl_tree_values_and_comments() -> None:
    root = parse_zpl(
        "# comment\n"
        "broker\n"
        "    frontend = tcp://127.0.0.1:5555     # trailing comment\n"
        "    heartbeat_ms = 1000\n"
        "\n"
        "models\n"
        "    fast-sim\n"
        "        text = \"Hello # not a comment, with commas\"   # real comment\n"
        "        other = 'single quoted'\n"
        "        empty =\n"
        "groups\n"
        "    quick\n"
        "        targets = \"fast-sim, slow-sim\"\n")
    assert root.get("broker/frontend") == "tcp://127.0.0.1:5555"
    assert root.get("broker/heartbeat_ms") == "1000"
    assert root.get("models/fast-sim/text") == "Hello # not a comment, with commas"
    assert root.get("models/fast-sim/other") == "single quoted"
    assert root.get("models/fast-sim/empty") == ""
    assert root.get("models/fast-sim/missing", "dflt") == "dflt"
    assert root.get("nope/x") is None
    assert split_list(root.get("groups/quick/targets") or "") == ["fast-sim", "slow-sim"]
    assert [p for p, _ in root.walk()][:3] == ["broker", "broker/frontend", "broker/heartbeat_ms"]


@pytest.mark.parametrize("text,why", [
    ("broker\n  frontend = x\n", "multiple of 4"),
    ("broker\n\tfrontend = x\n", "tab"),
    ("broker\n        frontend = x\n", "too deep"),
    ("broker\n    text = \"open\n", "unterminated"),
    ("broker\n    text = \"a\" b\n", "text after quoted value"),
    ("broker\n    =x\n", "bad name"),
    ("broker junk\n", "expected 'name = value'"),
])
def test_zpl_errors_name_the_line(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_zpl(text, "t.conf")
    msg = str(e.value)
    assert why in msg and ("t.conf:1:" in msg or "t.conf:2:" in msg)


def test_repo_configs_load() -> None:
    cfg = load_config(REPO / "config" / "aigw.conf", HERE.parent / "agent.conf")
    assert cfg.frontend == "tcp://127.0.0.1:5555"
    assert cfg.backend == "tcp://127.0.0.1:5556"
    assert cfg.heartbeat_ms == 1000 and cfg.liveness == 3 and cfg.deadline_ms == 120000
    assert cfg.deliberate_service == "agent/deliberate"
    assert cfg.deliberate_solvers == ["fast-sim", "slow-sim"]
    assert cfg.consensus_models == ["fast-sim", "slow-sim"]
    assert cfg.consensus_judge == "fast-sim" and cfg.capacity == 16


def test_agent_file_overrides_and_flat_paths(tmp_path: Path) -> None:
    main = tmp_path / "aigw.conf"
    main.write_text("broker\n    frontend = tcp://10.0.0.1:1\n    backend = tcp://10.0.0.1:2\n"
                    "    heartbeat_ms = 250\nworker\n    broker = tcp://10.0.0.1:3\n"
                    "models\n    x\n        provider = sim\n")
    agent = tmp_path / "agent.conf"
    agent.write_text("agent\n    capacity = 3\n    id = a1\n"
                     "deliberate/planner = planner-x\n"
                     "deliberate\n    solvers = \"s1 s2,s3\"\n    policy = hedge\n"
                     "consensus\n    service =\n")
    cfg = load_config(main, agent)
    assert cfg.frontend == "tcp://10.0.0.1:1"
    assert cfg.backend == "tcp://10.0.0.1:3"          # worker/broker wins over broker/backend
    assert cfg.heartbeat_ms == 250 and cfg.capacity == 3 and cfg.worker_id == "a1"
    assert cfg.deliberate_planner == "planner-x"
    assert cfg.deliberate_solvers == ["s1", "s2", "s3"] and cfg.deliberate_policy == "hedge"
    assert cfg.consensus_service == ""                 # disabled


@pytest.mark.parametrize("text,why", [
    ("agent\n    colour = red\n", "agent/colour: unknown key"),
    ("planner\n    x = 1\n", "planner: unknown section"),
    ("agent\n    capacity = 0\n", "agent/capacity: expected an integer"),
    ("agent\n    capacity = lots\n", "agent/capacity: expected an integer"),
    ("deliberate\n    solvers = \"\"\n", "needs at least one model"),
    ("deliberate\n    policy = fastest\n", "unknown policy"),
    ("agent\n    frontend = localhost:5555\n", "expected a zmq endpoint"),
    ("consensus\n    judge =\n", "must not be empty"),
])
def test_agent_file_errors(tmp_path: Path, text: str, why: str) -> None:
    p = tmp_path / "agent.conf"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(None, p)
    assert why in str(e.value) and str(p) in str(e.value)


def test_missing_file_and_defaults(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open"):
        load_config(tmp_path / "nope.conf")
    cfg = load_config()
    assert cfg == AgentConfig(worker_id=cfg.worker_id)
