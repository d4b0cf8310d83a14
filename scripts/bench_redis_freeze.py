"""Redis frozen under the service: Generate and GetSample latency while a real redis-server is
stopped with SIGSTOP (it accepts connections and never answers), and how soon samples are stored
again after SIGCONT - with the cache's circuit breaker off (``--redis-breaker-threshold 0``, the
behaviour before it existed) and on (the defaults).

    python -m scripts.bench_redis_freeze [--models DIR] [--out docs/benchmarks]

Each scenario gets a fresh redis-server and ``latentforge serve`` as its own process (as
scripts/bench_serving.py starts them); one client here issues Generate count=1 with a new seed
each time (so each request does three cache operations: rendered-output lookup and store, sample
store) in a closed loop: ``--before`` seconds normal, ``--frozen`` seconds frozen, then GetSample
of a stored id a few times while still frozen, then SIGCONT and ``--after`` seconds more. Writes
``redis_freeze.md``: p50 per ``--window`` window of each phase, the summary figures, the machine.
Without ``--models`` a mnist-dcgan is trained for 20 steps and exported into ``--work`` (its
quality does not matter here).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = "mnist-dcgan"
STATES = {0: "closed", 1: "open", 2: "half-open"}


@dataclass
class Call:
    """One request: when it started and ended (monotonic seconds), and whether it was stored."""

    start: float
    end: float
    ok: bool
    stored: bool = False

    @property
    def ms(self) -> float:
        return (self.end - self.start) * 1000


@dataclass
class Run:
    """One scenario's measurements; times are monotonic, ``frozen_at``/``resumed_at`` the signals."""

    name: str
    generate: list[Call] = field(default_factory=list)
    get_sample: list[tuple[float, str]] = field(default_factory=list)  # (ms, status code)
    frozen_at: float = 0.0
    resumed_at: float = 0.0
    first_stored_after_s: float | None = None
    breaker_state_frozen: float | None = None
    breaker_refused: float | None = None


def build_model(work: Path, steps: int = 20) -> Path:
    """A briefly trained mnist-dcgan exported into ``work/models`` (kept for later runs)."""
    from scripts.bench_serving import _cli

    repo = work / "models"
    if not (repo / MODEL / "1" / "manifest.json").is_file():
        run = work / "runs" / MODEL
        print(f"training {MODEL} for {steps} steps ...", flush=True)
        _cli("train", "--model", "dcgan", "--data", "mnist5k", "--steps", str(steps), "--out", str(run),
             "--sample-every", str(steps), "--checkpoint-every", str(steps))
        _cli("export", str(run), "--repo", str(repo), "--name", MODEL)
    return repo


def scrape(url: str) -> dict[str, float]:
    """``name{labels}`` -> value of the cache breaker's series on a /metrics page."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(latentforge_cache_breaker_\w+)\{backend="redis"\} (\S+)$', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def generate_until(client: Any, until: float, calls: list[Call], seed: list[int]) -> None:
    """Closed loop of Generate count=1, a new seed each time, until ``until`` (monotonic)."""
    import grpc

    while time.monotonic() < until:
        seed[0] += 1
        start = time.monotonic()
        try:
            stored = client.generate(MODEL, 1, seed=seed[0]).stored
            calls.append(Call(start, time.monotonic(), True, stored))
        except grpc.RpcError:
            calls.append(Call(start, time.monotonic(), False))


def scenario(name: str, repo: Path, extra: list[str], plan: argparse.Namespace) -> Run:
    """One fresh Redis and server; the normal, frozen and resumed phases."""
    import grpc

    from scripts.bench_serving import Redis, Server
    from services.generation.client import GenerationClient

    run = Run(name)
    redis = Redis()
    try:
        with Server(repo, "--redis-url", redis.url, *extra) as server:
            breaker = scrape(server.metrics_url)
            if ("--redis-breaker-threshold" in extra) == bool(breaker):
                raise SystemExit(f"{name}: the server's breaker series are {breaker or 'absent'}, so its "
                                 "redis_breaker_* settings did not reach the cache")
            with GenerationClient(server.target, timeout_s=30) as client:
                seed = [1000]
                kept = client.generate(MODEL, 1, seed=1).samples[0].sample_id
                generate_until(client, time.monotonic() + 1.0, [], seed)  # warm-up
                generate_until(client, time.monotonic() + plan.before, run.generate, seed)
                run.frozen_at = time.monotonic()
                redis.proc.send_signal(signal.SIGSTOP)
                try:
                    generate_until(client, run.frozen_at + plan.frozen, run.generate, seed)
                    for _ in range(plan.lookups):
                        start = time.monotonic()
                        try:
                            client.get_sample(kept)
                            code = "OK"
                        except grpc.RpcError as exc:
                            code = exc.code().name
                        run.get_sample.append(((time.monotonic() - start) * 1000, code))
                    breaker = scrape(server.metrics_url)
                    run.breaker_state_frozen = breaker.get("latentforge_cache_breaker_state")
                    run.breaker_refused = breaker.get("latentforge_cache_breaker_refused_total")
                finally:
                    run.resumed_at = time.monotonic()
                    redis.proc.send_signal(signal.SIGCONT)
                generate_until(client, run.resumed_at + plan.after, run.generate, seed)
        stored = [c.end for c in run.generate if c.stored and c.end >= run.resumed_at]
        run.first_stored_after_s = min(stored) - run.resumed_at if stored else None
    finally:
        redis.stop()
    return run


# ---- figures ---------------------------------------------------------------------------------------

def phases(run: Run, plan: argparse.Namespace) -> list[tuple[str, list[Call]]]:
    """(label, calls ending in it) per window: before, frozen and resumed phases, labelled by
    their offset from the phase's start."""
    out = []
    spans = (("normal", run.frozen_at - plan.before, run.frozen_at, -plan.before),
             ("frozen", run.frozen_at, run.frozen_at + plan.frozen, 0.0),
             ("resumed", run.resumed_at, run.resumed_at + plan.after, 0.0))
    for phase, begin, end, offset in spans:
        t = begin
        while t < end - 1e-9:
            calls = [c for c in run.generate if t <= c.end < min(t + plan.window, end)]
            out.append((f"{phase} {offset + (t - begin):+.1f} s", calls))
            t += plan.window
    return out


def p50(calls: list[Call]) -> float | None:
    return statistics.median(c.ms for c in calls) if calls else None


def summary(run: Run, plan: argparse.Namespace) -> dict[str, Any]:
    normal = [c for c in run.generate if c.end < run.frozen_at]
    frozen = [c for c in run.generate if run.frozen_at + 1.0 <= c.end < run.frozen_at + plan.frozen]
    lookups = [ms for ms, _ in run.get_sample]
    return {
        "normal_p50_ms": p50(normal),
        "frozen_p50_ms": p50(frozen),
        "frozen_ratio": (p50(frozen) / p50(normal)) if frozen and normal else None,
        "frozen_stored": sum(c.stored for c in frozen),
        "frozen_requests": len(frozen),
        "errors": sum(not c.ok for c in run.generate),
        "get_sample_p50_ms": statistics.median(lookups) if lookups else None,
        "get_sample_max_ms": max(lookups) if lookups else None,
        "get_sample_codes": sorted({code for _, code in run.get_sample}),
        "first_stored_after_s": run.first_stored_after_s,
        "breaker_state_frozen": run.breaker_state_frozen,
        "breaker_refused": run.breaker_refused,
    }


def _f(v: Any, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | {' | '.join(cells)} |"


def _state_name(value: float | None) -> str:
    return "-" if value is None else STATES.get(int(value), str(value))


def markdown(runs: list[Run], plan: argparse.Namespace, info: dict[str, Any], command: str) -> str:
    sums = [summary(r, plan) for r in runs]
    names = [r.name for r in runs]
    machine_line = (
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}; Python "
        f"{info['python']}, ONNX Runtime {info['onnxruntime']}, grpcio {info['grpcio']}. Load average "
        f"{info['load_average_start']} at the start, {info['load_average_end']} at the end: the machine is "
        "shared, so absolute figures are noisy; compare the two scenarios and the ratios, measured in one run.")
    setup_line = (
        "One client, Generate count=1 with a new seed each time (three cache operations per request: "
        "rendered-output lookup and store, sample store), closed loop; the server as its own process "
        f"(`latentforge serve --redis-url ...`, Redis timeout 0.25 s). Phases: {plan.before:g} s normal, "
        f"{plan.frozen:g} s with redis-server stopped (SIGSTOP), then {plan.lookups} GetSample calls of a "
        f"stored id while still stopped, then SIGCONT and {plan.after:g} s more. "
        f"`{names[0]}`: `--redis-breaker-threshold 0` (no breaker: the behaviour before it); "
        f"`{names[1]}`: the defaults (opens after 3 failures in a row; PING after 0.25 s, doubling to 1 s).")
    lines = [
        "# Redis frozen under the service (SIGSTOP), with and without the cache's circuit breaker",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `{command}`.",
        "",
        machine_line,
        "",
        setup_line,
        "",
        "## Summary",
        "",
        _row("", names),
        "|---|" + "---:|" * len(runs),
        _row("Generate p50, normal (ms)", [_f(s["normal_p50_ms"], 2) for s in sums]),
        _row("Generate p50, frozen, from its second second on (ms)", [_f(s["frozen_p50_ms"], 2) for s in sums]),
        _row("... as a multiple of normal (target with the breaker: <= 2x)", [_f(s["frozen_ratio"], 2) for s in sums]),
        _row("Generate requests in that span / stored", [f"{s['frozen_requests']} / {s['frozen_stored']}" for s in sums]),
        _row("GetSample while frozen, p50 / max (ms) (target: <= 20 ms)",
             [f"{_f(s['get_sample_p50_ms'], 2)} / {_f(s['get_sample_max_ms'], 2)}" for s in sums]),
        _row("GetSample status while frozen", [", ".join(s["get_sample_codes"]) for s in sums]),
        _row("SIGCONT -> first stored sample (s) (target: <= 2 s)", [_f(s["first_stored_after_s"], 2) for s in sums]),
        _row("breaker state while frozen (gauge)", [_state_name(s["breaker_state_frozen"]) for s in sums]),
        _row("cache operations refused by the breaker", [_f(s["breaker_refused"], 0) for s in sums]),
        _row("Generate errors", [str(s["errors"]) for s in sums]),
        "",
        f"## Generate p50 per {plan.window:g} s window (ms; requests / stored in the window)",
        "",
        _row("window", names),
        "|---|" + "---:|" * len(runs),
    ]
    for row in zip(*[phases(r, plan) for r in runs]):
        lines.append(_row(row[0][0], [f"{_f(p50(calls), 2)} ({len(calls)} / {sum(c.stored for c in calls)})"
                                      for _, calls in row]))
    lines += ["", "A window with no request ending in it shows `-`: the one request in flight was still waiting on Redis.",
              ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks", help="where redis_freeze.md goes")
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "bench-redis-freeze", help="the model is kept here")
    parser.add_argument("--models", type=Path, help=f"a repository with {MODEL} instead of training one")
    parser.add_argument("--before", type=float, default=3.0, help="seconds of normal service")
    parser.add_argument("--frozen", type=float, default=5.0, help="seconds of Generate with Redis stopped")
    parser.add_argument("--lookups", type=int, default=8, help="GetSample calls while Redis is stopped")
    parser.add_argument("--after", type=float, default=4.0, help="seconds of Generate after SIGCONT")
    parser.add_argument("--window", type=float, default=0.5, help="timeline window in seconds")
    plan = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from scripts.bench_serving import machine

    info = machine()
    repo = plan.models or build_model(plan.work)
    runs = [scenario("breaker off", repo, ["--redis-breaker-threshold", "0"], plan),
            scenario("breaker on", repo, [], plan)]
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    for r in runs:
        s = summary(r, plan)
        print(f"{r.name:<12} normal p50 {_f(s['normal_p50_ms'], 2)} ms, frozen p50 {_f(s['frozen_p50_ms'], 2)} ms "
              f"({_f(s['frozen_ratio'], 2)}x), GetSample frozen p50 {_f(s['get_sample_p50_ms'], 2)} ms "
              f"{s['get_sample_codes']}, SIGCONT -> stored {_f(s['first_stored_after_s'], 2)} s", flush=True)
    plan.out.mkdir(parents=True, exist_ok=True)
    command = "python -m scripts.bench_redis_freeze" + (f" --models {plan.models}" if plan.models else "")
    (plan.out / "redis_freeze.md").write_text(markdown(runs, plan, info, command))
    print(f"wrote {plan.out / 'redis_freeze.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
