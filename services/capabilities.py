"""Which RPCs a model version supports, derived from the tasks its manifest declares.

``RPC_TASKS`` is the one place that links tasks (``latentforge.manifest``) to RPCs: a family
whose manifest declares the right tasks is served without code here; a new task comes with
the RPCs that use it, listed here.
"""

from __future__ import annotations

from typing import Iterable

# RPC -> the tasks a model must declare for it.
RPC_TASKS: dict[str, frozenset[str]] = {
    # Seeds become latents drawn from the prior, decoded into images.
    "Generate": frozenset({"sample", "decode"}),
    "GenerateStream": frozenset({"sample", "decode"}),
    # Between two latents (sample ids, raw latents; seed endpoints need "sample" too).
    "Interpolate": frozenset({"decode"}),
    # Noise of the prior's scale around a stored latent.
    "Variations": frozenset({"sample", "decode"}),
    # Reads a stored sample; any model.
    "GetSample": frozenset(),
    "Encode": frozenset({"encode"}),
    "Reconstruct": frozenset({"encode", "decode"}),
}


def supported_rpcs(tasks: Iterable[str]) -> list[str]:
    """RPC names a model with ``tasks`` supports, in ``RPC_TASKS`` order."""
    have = set(tasks)
    return [rpc for rpc, needs in RPC_TASKS.items() if needs <= have]


def missing_tasks(rpc: str, tasks: Iterable[str]) -> list[str]:
    """Tasks ``rpc`` needs that a model with ``tasks`` lacks (KeyError for an unknown RPC)."""
    return sorted(RPC_TASKS[rpc] - set(tasks))
