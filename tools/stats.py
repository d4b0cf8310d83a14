"""Small statistics shared by the benchmarks (load generator, raw ONNX Runtime benchmark)."""

from __future__ import annotations


def percentiles(values_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99/max (nearest rank) of latencies in milliseconds."""
    if not values_ms:
        return {}
    ordered = sorted(values_ms)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered))) - 1))], 3)

    return {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": round(ordered[-1], 3),
            "mean": round(sum(ordered) / len(ordered), 3)}
