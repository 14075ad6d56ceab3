"""Provisioning a county (issue 15): a file of 30,000 persons and 100,000 devices through
``homewatch provision``, as an operator runs it, on SQLite and on PostgreSQL.

Each database gets a fresh one; the file is applied twice: once into the empty register
(everything created) and once more unchanged (what a nightly re-provisioning costs). The
wall time and the peak RSS are the ``homewatch`` process's own (``wait4``).

    .venv/bin/python -m bench.bench_provision [--persons 30000] [--devices 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from tests.helpers import id_number
from tests.services import scratch_pg_database

_VILLAGES = 27 * 10  # a county: 27 towns of about 10 villages; one town line for the file
_PERSONS_PER_HELPER = 30
_HEADING = "## Provisioning a county (issue 15)"
_KINDS = (("sos", "native"), ("motion", "native"), ("door", "zigbee2mqtt"), ("fall", "native"))


def county_yaml(persons: int, devices: int) -> str:
    """A valid provisioning file of ``persons`` persons sharing ``devices`` devices."""
    lines = [
        "town: 隘口镇",
        'town_duty: {name: 民政办值班, phone: "+8602376000000"}',
        "villages:",
    ]
    for v in range(_VILLAGES):
        lines.append(f"  - name: 村{v:03d}")
        lines.append(f'    emergency_team: [{{name: 队长{v}, phone: "+86139{v:08d}", role: 队长}}]')
    helpers = max(1, persons // _PERSONS_PER_HELPER)
    lines.append("helpers:")
    for h in range(helpers):
        village = f"村{h % _VILLAGES:03d}"
        lines.append(
            f'  - {{name: 帮扶{h}, phone: "+86137{h:08d}", title: 村干部, village: {village}}}'
        )
    lines.append("persons:")
    born = date(1930, 1, 1)
    for n in range(persons):
        helper = n % helpers
        male = n % 2 == 0
        birth = (born + timedelta(days=n % 20000)).strftime("%Y%m%d")
        number = id_number(birth, n // 20000 + 10, male)
        lines += [
            f"  - name: 老人{n}",
            f"    gender: {'男' if male else '女'}",
            f'    id_number: "{number}"',
            f"    village: 村{helper % _VILLAGES:03d}",
            "    categories: [dispersed_destitute]",
            "    care_level: general",
            f'    helper: "+86137{helper:08d}"',
            f"    address: 第{n}号",
            "    devices:",
        ]
        share = devices // persons + (1 if n < devices % persons else 0)
        for d in range(share):
            kind, protocol = _KINDS[d % len(_KINDS)]
            lines.append(f"      - {{uid: c{n}-d{d}, kind: {kind}, protocol: {protocol}}}")
    lines.append("users: []")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class Run:
    database: str
    pass_: str
    seconds: float
    peak_rss_mb: float


def provision(path: Path, database_url: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``homewatch provision``."""
    env = {
        **os.environ,
        "HOMEWATCH_DATABASE_URL": database_url,
        "HOMEWATCH_SECRET_KEY": "bench-provision-" + "k" * 16,
    }
    homewatch = Path(sys.executable).parent / "homewatch"
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(homewatch), "provision", str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    out = process.stdout.read().decode() if process.stdout else ""
    err = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"homewatch provision failed:\n{out}\n{err}")
    print(out.strip(), file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def table(runs: list[Run], persons: int, devices: int) -> str:
    rows = [f"| {r.database} | {r.pass_} | {r.seconds:.1f} | {r.peak_rss_mb:.0f} |" for r in runs]
    return "\n".join(
        [
            _HEADING,
            "",
            "```sh",
            f".venv/bin/python -m bench.bench_provision --persons {persons} --devices {devices}",
            "```",
            "",
            f"`homewatch provision` of one file with {persons:,} persons, {devices:,} devices, "
            f"{_VILLAGES} villages and {max(1, persons // _PERSONS_PER_HELPER):,} helpers, "
            "into a fresh database, then the same file again (nothing changes). One run each "
            "on the shared 2-core machine (other engineers' jobs running: noisy).",
            "",
            "| database | pass | wall s | peak RSS MB |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def write_section(text: str, path: Path = Path("docs/BENCHMARKS.md")) -> None:
    current = path.read_text(encoding="utf-8")
    if _HEADING in current:
        start = current.index(_HEADING)
        rest = current[start + len(_HEADING) :]
        end = rest.find("\n## ")
        current = current[:start] + (rest[end + 1 :] if end >= 0 else "")
    path.write_text(current.rstrip("\n") + "\n\n" + text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=30_000)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "county.yaml"
        path.write_text(county_yaml(args.persons, args.devices), encoding="utf-8")
        sqlite_url = f"sqlite+aiosqlite:///{folder}/county.db"
        with scratch_pg_database("hwbenchprov") as pg_url:
            for name, url in (("SQLite", sqlite_url), ("PostgreSQL", pg_url)):
                for pass_ in ("create all", "unchanged"):
                    seconds, rss = provision(path, url)
                    runs.append(Run(name, pass_, seconds, rss))
                    print(f"{name} {pass_}: {seconds:.1f} s, {rss:.0f} MB", file=sys.stderr)
    text = table(runs, args.persons, args.devices)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
