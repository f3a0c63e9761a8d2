"""A simulated fleet: many agents in one process, speaking only the public HTTP protocol.

    stats = await sim.run_fleet(
        sim.FleetConfig(devices=50, seed=7),
        server="http://127.0.0.1:8080",
        enrollment_tokens={"acme/retail": "pce_...", "acme/logistics": "pce_..."},
        clock=ScaledClock(speed=60),
        duration=30,
    )

Deterministic for a seed: which devices exist, what they miss, and every choice each agent
makes (failures, delays, going offline) come from per-agent generators seeded by the fleet seed;
only the interleaving of requests depends on the scheduler.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from controller.sim.agent import Agent, Behaviour, Stats
from controller.sim.clock import Clock, ManualClock, ScaledClock
from controller.sim.fleet import DEFAULT_TENANTS, DeviceProfile, plan_fleet
from controller.sim.patches import BUILTIN, SimPatch, from_records

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "BUILTIN",
    "Agent",
    "Behaviour",
    "Clock",
    "DeviceProfile",
    "FleetConfig",
    "ManualClock",
    "ScaledClock",
    "SimPatch",
    "Stats",
    "from_records",
    "plan_fleet",
    "run_fleet",
]

MAX_CONNECTIONS = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetConfig:
    devices: int
    seed: int = 1
    behaviour: Behaviour = field(default_factory=Behaviour)
    once: bool = False  # enrol, report, poll once and stop
    connections: int = MAX_CONNECTIONS  # httpx scans its whole pool on every request


async def run_fleet(  # noqa: PLR0913 - the fleet's whole context, all keyword-only
    config: FleetConfig,
    *,
    server: str,
    enrollment_tokens: Mapping[str, str],
    clock: Clock,
    catalogue: Sequence[SimPatch] = BUILTIN,
    duration: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    stop: asyncio.Event | None = None,
    stats: Stats | None = None,
) -> Stats:
    """Run the fleet until `duration` wall seconds pass, `stop` is set, or (with `once`) every
    agent has done one cycle. `enrollment_tokens` maps tenant paths to enrolment tokens;
    devices are spread over those tenants."""
    if not enrollment_tokens:
        raise ValueError("the fleet needs at least one enrolment token")
    tenants = tuple(enrollment_tokens) or DEFAULT_TENANTS
    profiles = plan_fleet(config.devices, seed=config.seed, tenants=tenants)
    patches = list(catalogue) or list(BUILTIN)
    stats = stats if stats is not None else Stats()  # pass one in to watch it while running
    deadline = None if duration is None else time.monotonic() + duration
    stopped = stop or asyncio.Event()

    def should_stop() -> bool:
        return stopped.is_set() or (deadline is not None and time.monotonic() >= deadline)

    limits = httpx.Limits(
        max_connections=config.connections, max_keepalive_connections=config.connections
    )
    async with httpx.AsyncClient(
        base_url=server, transport=transport, limits=limits, timeout=30.0
    ) as client:
        agents = [
            Agent(
                profile=profile,
                enrollment_token=enrollment_tokens[profile.tenant],
                catalogue=patches,
                client=client,
                clock=clock,
                behaviour=config.behaviour,
                stats=stats,
                seed=config.seed,
            )
            for profile in profiles
        ]
        tasks = [
            asyncio.create_task(a.run(once=config.once, should_stop=should_stop)) for a in agents
        ]
        if deadline is None:
            await asyncio.gather(*tasks)
        else:
            _done, pending = await asyncio.wait(
                tasks, timeout=max(0.0, deadline - time.monotonic())
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    return stats
