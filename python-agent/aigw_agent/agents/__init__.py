"""Agent strategies served as models on the broker: agent/deliberate and agent/consensus."""
from __future__ import annotations

from ..client import Client
from ..config import AgentConfig
from ..worker import Handler
from .consensus import Consensus
from .deliberate import Deliberate


def build_services(cfg: AgentConfig, client: Client) -> dict[str, Handler]:
    """Service name -> handler for every strategy enabled in cfg."""
    services: dict[str, Handler] = {}
    if cfg.deliberate_service:
        services[cfg.deliberate_service] = Deliberate(cfg, client)
    if cfg.consensus_service:
        services[cfg.consensus_service] = Consensus(cfg, client)
    return services


__all__ = ["Consensus", "Deliberate", "build_services"]
