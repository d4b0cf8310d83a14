"""A batch's finish step: neighbouring requests sharing one finish object are finished in one
call, and a failure there is still only the failing request's error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from services.generation.batching import _split


@dataclass
class _Req:  # the fields of a queued request that _split reads
    rows: int
    finish: Any
    respond: Any = None


def _rows(n: int) -> int:
    return n


def _out(result: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": result}


def test_requests_sharing_a_finisher_are_finished_in_one_call():
    calls: list[int] = []

    def encode(out: dict) -> list:
        calls.append(len(out["image"]))
        return [float(row[0]) for row in out["image"]]

    def own(out: dict) -> list:
        return ["own"] * len(out["image"])

    result = np.arange(8, dtype=np.float32)[:, None].repeat(2, 1)
    batch = [_Req(_rows(1), encode), _Req(_rows(3), encode), _Req(_rows(2), own), _Req(_rows(1), encode),
             _Req(_rows(1), None)]
    out = _split(batch, _out(result))
    assert calls == [4, 1]  # the first two together; the fourth follows another finisher
    assert out[0] == (True, [0.0]) and out[1] == (True, [1.0, 2.0, 3.0])
    assert out[2] == (True, ["own", "own"]) and out[3] == (True, [6.0])
    assert out[4][0] is True and out[4][1]["image"].shape == (1, 2)  # no finish: the rows themselves


def test_a_failing_shared_finish_fails_only_the_request_it_fails_on():
    def encode(out: dict) -> list:
        if np.isnan(out["image"]).any():
            raise ValueError("cannot encode NaN")
        return ["ok"] * len(out["image"])

    result = np.zeros((3, 2), np.float32)
    result[1] = np.nan
    batch = [_Req(_rows(1), encode), _Req(_rows(1), encode), _Req(_rows(1), encode)]
    out = _split(batch, _out(result))
    assert out[0] == (True, ["ok"]) and out[2] == (True, ["ok"])
    assert out[1][0] is False and "NaN" in str(out[1][1])


def test_without_finish_each_request_gets_its_rows():
    result = np.arange(6, dtype=np.float32)[:, None]
    out = _split([_Req(_rows(2), None), _Req(_rows(4), None)], _out(result))
    assert [part["image"].ravel().tolist() for _, part in out] == [[0.0, 1.0], [2.0, 3.0, 4.0, 5.0]]


def test_respond_runs_on_each_requests_own_result_after_a_shared_finish():
    """A request's respond gets its own finished rows (after the shared finish call) and what it
    returns is the request's answer; a respond that fails fails only its own request."""
    def encode(out: dict) -> list:
        return [float(v) for v in out["image"][:, 0]]

    def broken(items: list) -> Any:
        raise ValueError("cannot respond")

    result = np.arange(4, dtype=np.float32)[:, None].repeat(2, 1)
    batch = [_Req(1, encode, lambda items: ("one", items)), _Req(2, encode, broken), _Req(1, encode, tuple),
             _Req(0 + 1, None, lambda out: out["image"].shape)]
    out = _split(batch, _out(np.concatenate([result, result[:1]])))
    assert out[0] == (True, ("one", [0.0]))
    assert out[1][0] is False and "cannot respond" in str(out[1][1])
    assert out[2] == (True, (3.0,))
    assert out[3] == (True, (1, 2))
