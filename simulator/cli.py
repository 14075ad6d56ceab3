"""``homewatch simulate``: simulated homes on a broker (SPEC §8).

The ``homewatch`` command wires :func:`configure_parser` and :func:`run` in as its
``simulate`` subcommand. Ctrl-C (or SIGTERM) stops the run cleanly and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from gateway.clock import ScaledClock
from simulator.household import HOUSEHOLD_PROTOCOLS, Household, Topics, generate_households
from simulator.load import LoadSummary, run_load
from simulator.provisioning import write_provisioning as write_provisioning_file
from simulator.routine import TOWN_TZ
from simulator.runner import RunSummary, run_simulation
from simulator.scenarios import ScenarioName, ScenarioRequest, parse_duration, parse_scenario

__all__ = ["configure_parser", "main", "run"]

logger = logging.getLogger(__name__)

_SCENARIO_HELP = (
    "inject a scenario: NAME[@WHEN][,HOUSEHOLD][,for=DURATION][,device=UID]; WHEN is +10m "
    "(after the start), 23:30 (next local time) or an ISO instant. Names: "
    + ", ".join(s.value for s in ScenarioName)
    + ". Repeatable."
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add ``simulate``'s options to ``parser``."""
    env = os.environ.get
    broker = parser.add_argument_group("broker")
    broker.add_argument(
        "--mqtt-url",
        default=env("HOMEWATCH_MQTT_URL", "mqtt://127.0.0.1:1883"),
        help="broker URL, mqtt://host:port or mqtts:// (default: $HOMEWATCH_MQTT_URL or local)",
    )
    broker.add_argument("--mqtt-username", default=env("HOMEWATCH_MQTT_USERNAME"))
    broker.add_argument("--mqtt-password", default=env("HOMEWATCH_MQTT_PASSWORD"))
    broker.add_argument("--client-id", default=None, help="MQTT client id (default: random)")

    homes = parser.add_argument_group("homes")
    homes.add_argument("--households", type=_positive_int, default=5, metavar="N")
    homes.add_argument("--protocol", choices=HOUSEHOLD_PROTOCOLS, default="native")
    homes.add_argument("--seed", type=int, default=0, metavar="S", help="same seed, same homes")
    homes.add_argument(
        "--topic-prefix", default="homewatch", metavar="P", help="native topics: P/<uid>/…"
    )
    homes.add_argument(
        "--z2m-base", default="zigbee2mqtt", metavar="B", help="zigbee2mqtt topics: B/<uid>"
    )
    homes.add_argument(
        "--z2m-no-cache-state",
        action="store_true",
        help="zigbee messages carry only what changed (zigbee2mqtt cache_state: false)",
    )
    homes.add_argument(
        "--write-provisioning",
        type=Path,
        metavar="FILE",
        help="write a provisioning YAML (SPEC §4) for exactly these homes",
    )
    homes.add_argument(
        "--provision-only",
        action="store_true",
        help="only write --write-provisioning's file; publish nothing",
    )

    sim = parser.add_argument_group("simulation")
    sim.add_argument("--speed", type=_positive_float, default=1.0, metavar="N")
    sim.add_argument(
        "--start",
        type=_instant,
        metavar="ISO",
        help="simulated start (default: now; without an offset: town time)",
    )
    sim.add_argument(
        "--duration",
        type=_duration,
        metavar="D",
        help="simulated time to run (90s, 4h, 2d; default: until Ctrl-C); in --load mode, "
        "wall-clock time to publish for",
    )
    sim.add_argument(
        "--scenario",
        action="extend",
        nargs="+",
        type=_scenario,
        default=[],
        metavar="NAME",
        help=_SCENARIO_HELP,
    )
    sim.add_argument(
        "--ground-truth",
        type=Path,
        metavar="FILE",
        help="append one JSON line per injected scenario",
    )

    load = parser.add_argument_group("load mode")
    load.add_argument(
        "--load", action="store_true", help="publish at a fixed rate instead of routines"
    )
    load.add_argument("--rate", type=_positive_float, default=100.0, metavar="R", help="msg/s")
    load.add_argument("--count", type=_positive_int, metavar="C", help="messages in total")
    load.add_argument("--max-inflight", type=_positive_int, default=200, metavar="M")


def run(args: argparse.Namespace) -> int:
    """Run ``homewatch simulate``; returns the exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    households = generate_households(args.households, seed=args.seed, protocol=args.protocol)
    topics = Topics(native_prefix=args.topic_prefix, z2m_base=args.z2m_base)
    if args.write_provisioning:
        write_provisioning_file(
            households,
            args.write_provisioning,
            topic_prefix=args.topic_prefix,
            z2m_base=args.z2m_base,
        )
        print(f"wrote provisioning for {len(households)} households to {args.write_provisioning}")
    if args.provision_only:
        if not args.write_provisioning:
            print("--provision-only needs --write-provisioning FILE", file=sys.stderr)
            return 2
        return 0
    if args.load:
        return _run_load(args, households, topics)
    return _run_routines(args, households, topics)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m simulator.cli``)."""
    parser = argparse.ArgumentParser(prog="homewatch simulate", description=__doc__)
    configure_parser(parser)
    return run(parser.parse_args(argv))


# --- Routine mode ---------------------------------------------------------------------------


def _run_routines(args: argparse.Namespace, households: list[Household], topics: Topics) -> int:
    if args.count is not None:
        print("--count only applies with --load", file=sys.stderr)
        return 2
    summary = asyncio.run(_simulate(args, households, topics))
    print(_describe_run(summary))
    return 1 if summary.errors else 0


async def _simulate(
    args: argparse.Namespace, households: list[Household], topics: Topics
) -> RunSummary:
    clock = ScaledClock(args.speed, start=args.start)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on every platform
            loop.add_signal_handler(signum, stop.set)
    commands: asyncio.Queue[ScenarioRequest] = asyncio.Queue()
    if sys.stdin.isatty():
        _read_console_commands(loop, commands)
    until = clock.now() + args.duration if args.duration else None
    print(
        f"simulating {len(households)} households from "
        f"{clock.now().astimezone(TOWN_TZ):%Y-%m-%d %H:%M} (town time) at {args.speed:g}x"
        + (f" until {until.astimezone(TOWN_TZ):%Y-%m-%d %H:%M}" if until else "; Ctrl-C stops")
    )
    return await run_simulation(
        households,
        mqtt_url=args.mqtt_url,
        clock=clock,
        stop=stop,
        scenarios=args.scenario,
        commands=commands,
        ground_truth_path=args.ground_truth,
        topics=topics,
        until=until,
        seed=args.seed,
        username=args.mqtt_username,
        password=args.mqtt_password,
        client_id=args.client_id,
        z2m_cache_state=not args.z2m_no_cache_state,
    )


def _read_console_commands(
    loop: asyncio.AbstractEventLoop, commands: asyncio.Queue[ScenarioRequest]
) -> None:
    """Scenarios typed at the terminal (``sos bm-002``) are injected at once."""
    print("type a scenario and Enter to inject it now, e.g. 'sos bm-002' or 'fall'")

    def read() -> None:
        for line in sys.stdin:
            text = ",".join(line.split())
            if not text:
                continue
            try:
                request = parse_scenario(text)
            except ValueError as exc:
                print(f"? {exc}", file=sys.stderr)
                continue
            loop.call_soon_threadsafe(commands.put_nowait, request)

    # A daemon thread: blocking stdin reads cannot be cancelled, and must not hold up exit.
    threading.Thread(target=read, name="simulate-console", daemon=True).start()


def _describe_run(summary: RunSummary) -> str:
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.by_kind.items()))
    lines = [
        f"published {summary.published} messages ({kinds}); "
        f"{summary.suppressed} routine events silenced by scenarios; "
        f"{summary.reconnects} reconnects"
    ]
    lines += [
        f"  scenario {t.scenario.value} in {t.household} ({t.person}) at "
        f"{t.at.astimezone(TOWN_TZ):%Y-%m-%d %H:%M:%S}: expected alert {t.expected_alert}"
        for t in summary.injected
    ]
    lines += [f"  error: {error}" for error in summary.errors]
    return "\n".join(lines)


# --- Load mode ------------------------------------------------------------------------------


def _run_load(args: argparse.Namespace, households: list[Household], topics: Topics) -> int:
    if (args.count is None) == (args.duration is None):
        print("--load needs exactly one of --count C and --duration D", file=sys.stderr)
        return 2
    if args.scenario:
        print("--scenario does not apply with --load", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        summary = run_load(
            households,
            mqtt_url=args.mqtt_url,
            rate=args.rate,
            count=args.count,
            duration_s=args.duration.total_seconds() if args.duration else None,
            topics=topics,
            max_inflight=args.max_inflight,
            stop=stop,
            username=args.mqtt_username,
            password=args.mqtt_password,
            client_id=args.client_id,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    print(_describe_load(summary))
    return 0 if summary.ok or (summary.stopped_early and summary.failed == 0) else 1


def _describe_load(summary: LoadSummary) -> str:
    lines = [
        f"sent {summary.sent}/{summary.requested} in {summary.elapsed_s:.2f}s: "
        f"{summary.achieved_rate:.0f} msg/s (target {summary.target_rate:g}); "
        f"acknowledged {summary.acknowledged} ({summary.acknowledged_rate:.0f} msg/s); "
        f"failed {summary.failed}; max in flight {summary.max_inflight}"
        + ("; stopped early" if summary.stopped_early else "")
    ]
    lines += [f"  error: {error}" for error in summary.errors]
    return "\n".join(lines)


# --- Argument types -------------------------------------------------------------------------


def _scenario(text: str) -> ScenarioRequest:
    try:
        return parse_scenario(text)
    except ValueError as exc:  # argparse would replace the message with "invalid value"
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=TOWN_TZ)
    return value.astimezone(UTC)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
