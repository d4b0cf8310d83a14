"""The TrainingService over HTTP/JSON on one `serve --training` process: a data set uploaded as a
streamed body, a real tiny job submitted, watched as Server-Sent Events to its published model,
generated from; jobs listed, cancelled and resumed; the data set deleted."""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from google.protobuf import json_format

from tests.helpers.processes import wait_until
from tests.helpers.servers import ServerThread, loopback_config
from tests.helpers.training import tiny_job, training_config


def _events(response: httpx.Response) -> list[tuple[str | None, str, Any]]:
    """(id, event, data) of each Server-Sent Event."""
    out, kind, ident = [], "", None
    for line in response.iter_lines():
        if line.startswith("id: "):
            ident = line[4:]
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            out.append((ident, kind, json.loads(line[6:])))
            ident = None
    return out


def _npz() -> bytes:
    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    np.savez(buf, images=rng.integers(0, 255, (64, 28, 28), dtype=np.uint8), labels=np.arange(64) % 4)
    return buf.getvalue()


def test_upload_train_watch_publish_generate_over_http(tmp_path: Path):
    from services.generation.server import GenerationServer

    models = tmp_path / "models"
    models.mkdir()
    serve = loopback_config(models=models, http_port=0)
    server = ServerThread(lambda: GenerationServer(serve, training_config(tmp_path / "data", models))).start()
    try:
        with httpx.Client(base_url=server.http_url, timeout=120) as http:
            assert "mnist5k" in http.get("/v1/datasets").json()["builtin"]
            data = _npz()
            digest = hashlib.sha256(data).hexdigest()
            wrong = http.put("/v1/datasets/blobs", params={"format": "npz", "sha256": "0" * 64}, content=data)
            assert wrong.status_code == 400 and "sha256" in wrong.json()["message"].lower()
            bad_format = http.put("/v1/datasets/blobs", params={"format": "rar", "sha256": digest}, content=data)
            assert bad_format.status_code == 400
            uploaded = http.put("/v1/datasets/blobs", params={"format": "npz", "sha256": digest}, content=data,
                                headers={"Content-Type": "application/octet-stream"})
            assert uploaded.status_code == 200, uploaded.text
            assert uploaded.json()["count"] == "64" and uploaded.json()["classNames"]
            assert [d["name"] for d in http.get("/v1/datasets").json()["datasets"]] == ["blobs"]

            spec = json_format.MessageToDict(tiny_job("dcgan", dataset="blobs", model_name="http-dcgan", publish=True))
            job = http.post("/v1/jobs", json=spec)
            assert job.status_code == 200, job.text
            job_id = job.json()["jobId"]

            with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                watched = _events(response)
            assert watched[-1][1] == "end"
            data_events = [(i, e) for i, kind, e in watched if kind == "data"]
            assert [int(i) for i, _ in data_events] == [int(e["seq"]) for _, e in data_events]
            kinds = {k for _, e in data_events for k in ("state", "progress", "grid", "published") if k in e}
            assert kinds == {"state", "progress", "grid", "published"}
            grid = next(e["grid"] for _, e in data_events if "grid" in e)
            assert grid["png"]  # base64 PNG of the newest samples

            # A Last-Event-ID that is no event id is left aside, not an error.
            for odd in (b"99999999999999999999", "\u00b2".encode(), b"-3"):
                with http.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": odd}) as response:
                    assert response.status_code == 200 and _events(response)[-1][1] == "end"
            import socket

            with socket.create_connection(("127.0.0.1", server.server.http_port)) as sock:
                sock.sendall(b"PUT /v1/datasets/huge?format=npz&sha256=" + digest.encode() + b" HTTP/1.1\r\n"
                             b"Host: x\r\nContent-Length: 99999999999999999999\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 413")
            # An upload cut off by its client: CANCELLED (not a server error), nothing kept.
            with socket.create_connection(("127.0.0.1", server.server.http_port)) as sock:
                sock.sendall(b"PUT /v1/datasets/cut?format=npz&sha256=" + digest.encode() + b" HTTP/1.1\r\n"
                             b"Host: x\r\nContent-Length: 5000\r\n\r\n" + data[:1000])
                time.sleep(0.3)
            registry = server.server.registry
            wait_until(lambda: registry.get_sample_value("latentforge_requests_total", {
                "method": "UploadDataset", "code": "CANCELLED", "protocol": "http"}) == 1, 10, "the cut upload")
            assert "cut" not in [d["name"] for d in http.get("/v1/datasets").json()["datasets"]]
            # A reconnecting EventSource resumes after the last id it saw.
            last = int(data_events[-3][0])
            with http.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": str(last)}) as response:
                resumed = [e for _, kind, e in _events(response) if kind == "data"]
            assert int(resumed[0]["seq"]) == last + 1

            done = http.get(f"/v1/jobs/{job_id}").json()
            assert done["state"] == "JOB_STATE_SUCCEEDED" and done["published"]["name"] == "http-dcgan"
            listed = http.get("/v1/jobs", params={"state": "JOB_STATE_SUCCEEDED"}).json()["jobs"]
            assert [j["jobId"] for j in listed] == [job_id]
            made = http.post("/v1/generate", json={"model": "http-dcgan", "count": 2, "seed": "1"})
            assert made.status_code == 200 and len(made.json()["samples"]) == 2

            # Cancel a second job, then resume it.
            second = http.post("/v1/jobs", json={**spec, "modelName": "http-dcgan-2", "publish": False}).json()
            cancelled = http.post(f"/v1/jobs/{second['jobId']}/cancel")
            assert cancelled.status_code == 200 and (cancelled.json().get("cancelRequested")
                                                     or cancelled.json()["state"] == "JOB_STATE_CANCELLED")
            with http.stream("GET", f"/v1/jobs/{second['jobId']}/events") as response:
                assert _events(response)[-1][1] == "end"
            assert http.get(f"/v1/jobs/{second['jobId']}").json()["state"] == "JOB_STATE_CANCELLED"
            resumed_job = http.post(f"/v1/jobs/{second['jobId']}/resume")
            assert resumed_job.status_code == 200 and resumed_job.json()["state"] == "JOB_STATE_QUEUED"
            again = http.post(f"/v1/jobs/{second['jobId']}/resume")
            assert again.status_code == 412 and again.json()["code"] == "FAILED_PRECONDITION"
            http.post(f"/v1/jobs/{second['jobId']}/cancel")
            with http.stream("GET", f"/v1/jobs/{second['jobId']}/events") as response:
                _events(response)

            assert http.get("/v1/jobs/no-such-job").status_code == 404
            assert http.post("/v1/jobs", json={**spec, "family": "no-such-family"}).status_code == 400
            assert http.delete("/v1/datasets/blobs").status_code == 200
            assert http.delete("/v1/datasets/blobs").status_code == 404
    finally:
        server.stop()
