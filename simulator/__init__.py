"""Simulated homes of 隘口镇 on MQTT: for the demo, for tests and for benchmarks (SPEC §8).

An outside client of the gateway: it speaks only MQTT (and writes a provisioning file),
and imports nothing of the gateway but its clocks, its register vocabulary and its events.

- :mod:`simulator.household`: seeded residents, helpers and devices.
- :mod:`simulator.identities`: their names, ID numbers and phones.
- :mod:`simulator.provisioning`: the provisioning YAML of those homes (SPEC §4).
- :mod:`simulator.routine`: pure daily routines, ``day_events(household, date, rng)``.
- :mod:`simulator.payloads`: native and zigbee2mqtt message encoding.
- :mod:`simulator.scenarios`: sos, fall, inactivity, … with ground truth.
- :mod:`simulator.runner`: ``run_simulation`` publishes in simulated time (aiomqtt).
- :mod:`simulator.load`: ``run_load`` publishes at a fixed rate (paho-mqtt).
- :mod:`simulator.cli`: ``homewatch simulate``.
"""

from __future__ import annotations

from simulator.household import (
    Household,
    SimDevice,
    Topics,
    generate_households,
    with_protocol,
)
from simulator.load import LoadSummary, run_load
from simulator.provisioning import write_provisioning
from simulator.routine import SimEvent, day_events, day_rng, events_between
from simulator.runner import RunSummary, run_simulation
from simulator.scenarios import (
    GroundTruth,
    ScenarioName,
    ScenarioRequest,
    build_injection,
    parse_scenario,
)

__all__ = [
    "GroundTruth",
    "Household",
    "LoadSummary",
    "RunSummary",
    "ScenarioName",
    "ScenarioRequest",
    "SimDevice",
    "SimEvent",
    "Topics",
    "build_injection",
    "day_events",
    "day_rng",
    "events_between",
    "generate_households",
    "parse_scenario",
    "run_load",
    "run_simulation",
    "with_protocol",
    "write_provisioning",
]
