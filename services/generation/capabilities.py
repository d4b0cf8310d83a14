"""Which RPCs a model version supports, derived from the tasks its manifest declares.

``RPC_TASKS`` is the one place that links tasks (``latentforge.manifest``) to RPCs: a family
whose manifest declares the right tasks is served without code here; a new task comes with
the RPCs that use it, listed here.
"""

from __future__ import annotations

from typing import Iterable

from services.errors import FailedPrecondition, InvalidArgument

# RPC -> the sets of tasks that let a model serve it (any one set suffices).
RPC_TASKS: dict[str, tuple[frozenset[str], ...]] = {
    # Seeds become latents drawn from the prior, decoded into images.
    "Generate": (frozenset({"sample", "decode"}),),
    "GenerateStream": (frozenset({"sample", "decode"}),),
    # Between two latents (sample ids, raw latents; seed endpoints need "sample" too); a stroke
    # model's frames are drawings made from each latent.
    "Interpolate": (frozenset({"decode"}), frozenset({"init_state", "draw_strokes"})),
    # Noise of the prior's scale around a stored latent: decoded, or (a completion sample)
    # completed again from the same input.
    "Variations": (frozenset({"sample", "decode"}), frozenset({"complete"})),
    # Reads a stored sample; any model.
    "GetSample": (frozenset(),),
    "Encode": (frozenset({"encode"}),),
    "Reconstruct": (frozenset({"encode", "decode"}),),
    # A completion model in one pass, or any model with an encoder and a decoder, iteratively.
    "Complete": (frozenset({"complete"}), frozenset({"encode", "decode"})),
    # Stroke models: the sampling loop over the decoder's step; encoding drawings to latents.
    "GenerateStrokes": (frozenset({"draw_strokes"}),),
    "ContinueStrokes": (frozenset({"draw_strokes"}),),
    "EncodeStrokes": (frozenset({"encode_strokes"}),),
    # Style models: any style (its statistics from the style encoder), or the one style built in.
    "Stylize": (frozenset({"encode_style", "stylize"}), frozenset({"stylize_fixed"})),
}


def supported_rpcs(tasks: Iterable[str]) -> list[str]:
    """RPC names a model with ``tasks`` supports, in ``RPC_TASKS`` order."""
    have = set(tasks)
    return [rpc for rpc, options in RPC_TASKS.items() if any(needs <= have for needs in options)]


def missing_tasks(rpc: str, tasks: Iterable[str]) -> list[str]:
    """Tasks ``rpc`` needs that a model with ``tasks`` lacks, for the way to serve it that lacks
    fewest (KeyError for an unknown RPC)."""
    have = set(tasks)
    return min((sorted(needs - have) for needs in RPC_TASKS[rpc]), key=len)


# What a missing task means to a client, for the refusal's message.
TASK_MEANING = {"sample": "no prior to sample latents from", "decode": "no graph from latents to images",
                "encode": "no encoder from images to latents",
                "complete": "no completion graph from an image and its mask to a filled image",
                "draw_strokes": "no stroke decoder to draw with", "init_state": "no latent-conditioned stroke decoder",
                "encode_strokes": "no encoder from drawings to latents",
                "encode_style": "no style encoder from a style image to its statistics",
                "stylize": "no stylizer from a content image and a style's statistics to an image",
                "stylize_fixed": "no one-style graph from a content image to its stylised image"}
# RPCs whose refusal is a wrong request (INVALID_ARGUMENT: an image sent to a model that cannot
# read images) rather than a model that lacks a feature (FAILED_PRECONDITION).
INVALID_ON_MISSING = frozenset({"Encode", "Reconstruct"})


def refuse(rpc: str, name: str, version: int, kind: str, tasks: Iterable[str]) -> None:
    """Raise the error a model (``name`` v``version``, with ``tasks``) answers ``rpc`` with when
    its tasks do not support it: what it lacks, and the RPCs it does support."""
    tasks = list(tasks)
    supported = supported_rpcs(tasks)
    if rpc in supported:
        return
    why = "; ".join(f"no {t!r} task ({TASK_MEANING.get(t, 'not declared by its manifest')})"
                    for t in missing_tasks(rpc, tasks))
    message = (f"model {name} v{version} (kind {kind}) does not support {rpc}: it has {why}; "
               f"it supports {', '.join(supported)}")
    raise (InvalidArgument if rpc in INVALID_ON_MISSING else FailedPrecondition)(message)
