"""The agent process: one Client (sub-jobs) and one WorkerBase (serving the strategies).

Each takes the config's broker list (frontend, backend: one endpoint or a comma list), so
the agent registers with every broker and spreads its sub-jobs over them."""
from __future__ import annotations

import zmq.asyncio

from .agents import build_services
from .client import Client
from .config import AgentConfig
from .curve import load_curve
from .worker import WorkerBase


class Agent:
    """Client + worker wired from an AgentConfig; run() serves until cancelled.

    With fabric/curve = on the certificates are loaded here, once, for both sockets; a
    missing or unsafe certificate raises ConfigError before anything connects.
    """

    def __init__(self, cfg: AgentConfig, context: zmq.asyncio.Context | None = None):
        self.cfg = cfg
        keys = load_curve(cfg)
        self.client = Client(cfg.frontend, context=context, max_frame=cfg.max_frame,
                             default_deadline_ms=cfg.deadline_ms, curve=keys,
                             heartbeat_ms=cfg.heartbeat_ms, liveness=cfg.liveness)
        self.worker = WorkerBase(cfg.backend, build_services(cfg, self.client),
                                 worker_id=cfg.worker_id, capacity=cfg.capacity,
                                 heartbeat_ms=cfg.heartbeat_ms, liveness=cfg.liveness,
                                 max_frame=cfg.max_frame, context=context, curve=keys)

    async def run(self) -> None:
        try:
            await self.worker.run()
        finally:
            await self.client.close()


async def run_agent(cfg: AgentConfig, context: zmq.asyncio.Context | None = None) -> None:
    """Serve the agent strategies until cancelled (a fixture can run this as a task)."""
    await Agent(cfg, context).run()
