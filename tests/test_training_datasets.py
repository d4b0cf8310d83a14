"""Uploaded data sets on a real TrainingService: a folder of class subfolders uploaded (zipped on
the fly), listed, trained on by a tiny job and deleted (refused while the job uses it); uploads
the service refuses (corrupt, unsafe names, links, too big, a zip bomb, too many files, no
images, a wrong sha256) each answer a clear status and leave nothing behind."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from latentforge.v1 import training_pb2 as pb
from services.training.client import TrainingClient, state_name
from tests.helpers.training import start_training_server, tiny_job


def _png(colour: tuple[int, int, int], size: int = 16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def _class_folder(root: Path, per_class: int = 20) -> Path:
    """Two classes of 16x16 colour images, one subfolder each."""
    rng = np.random.default_rng(0)
    for name in ("blue", "red"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            pixels[..., 0 if name == "red" else 2] = 230
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


def _zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def _raw_upload(client: TrainingClient, data: bytes, name: str, fmt: int = pb.DATASET_FORMAT_ZIP,
                sha256: str | None = None, size_bytes: int = 0, chunk: int = 4096):
    """An upload made by hand: any sha256, no declared size, small chunks."""
    header = pb.DatasetHeader(name=name, format=fmt, sha256=sha256 or hashlib.sha256(data).hexdigest(),
                              size_bytes=size_bytes)
    chunks = [pb.DatasetChunk(header=header, data=data[:chunk])]
    chunks += [pb.DatasetChunk(data=data[i:i + chunk]) for i in range(chunk, len(data), chunk)]
    return client.stub.UploadDataset(iter(chunks), timeout=60)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_upload_train_and_delete(tmp_path: Path):
    """A folder with two classes: uploaded, listed, trained on by a tiny job (delete refused
    meanwhile), then deleted with its files."""
    data_dir = tmp_path / "data"
    folder = _class_folder(tmp_path / "colours")
    server = start_training_server(data_dir, tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            ds = client.upload_dataset(folder, "colours")
            assert (ds.name, ds.count, list(ds.shape), list(ds.class_names)) == ("colours", 40, [3, 64, 64],
                                                                                 ["blue", "red"])
            assert ds.format == pb.DATASET_FORMAT_ZIP and ds.skipped_files == 0 and len(ds.sha256) == 64
            again = client.upload_dataset(folder, "colours")  # a retried upload: the same data set
            assert again.dataset_id == ds.dataset_id
            listed = client.list_datasets()
            assert [d.name for d in listed.datasets] == ["colours"] and "mnist5k" in listed.builtin
            with pytest.raises(grpc.RpcError) as err:
                client.upload_dataset(folder / "red", "colours")
            assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS

            job = client.submit(tiny_job("dcgan", dataset="colours", image_size=16, conditional=True))
            with pytest.raises(grpc.RpcError) as err:
                client.delete_dataset("colours")
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and job.job_id in err.value.details()
            done = client.wait(job.job_id, timeout_s=300)
            assert state_name(done.state) == "SUCCEEDED", done.reason
            assert done.step == 30

            deleted = client.delete_dataset("colours")
            assert deleted.dataset_id == ds.dataset_id
            assert list(client.list_datasets().datasets) == []
            assert _files(data_dir / "datasets") == []
            with pytest.raises(grpc.RpcError) as err:
                client.delete_dataset("colours")
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as err:
                client.resume(job.job_id)  # nothing to resume, and the data is gone besides
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.RpcError) as err:
                client.submit(tiny_job("dcgan", dataset="colours"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND and "colours" in err.value.details()
    finally:
        server.stop()


def test_npz_and_tar_uploads(tmp_path: Path):
    images = np.random.default_rng(1).integers(0, 255, (20, 28, 28), dtype=np.uint8)
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=images, labels=np.arange(20) % 4)
    folder = _class_folder(tmp_path / "set" / "colours", per_class=3)  # one folder at the top
    tgz = tmp_path / "colours.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(folder.parent, arcname="set")
    # What a service killed mid-upload leaves: a staging folder, and a folder never recorded.
    for stray in (tmp_path / "data" / "datasets" / ".uploads" / "0123" / "upload",
                  tmp_path / "data" / "datasets" / "feedfacecafe0000" / "data.npz"):
        stray.parent.mkdir(parents=True)
        stray.write_bytes(b"half")
    server = start_training_server(tmp_path / "data", tmp_path / "models")
    try:
        assert _files(tmp_path / "data" / "datasets") == []  # cleared away on start
        with TrainingClient(server.target) as client:
            ds = client.upload_dataset(npz, "digits")
            assert (ds.count, list(ds.shape), list(ds.class_names)) == (20, [1, 28, 28], ["0", "1", "2", "3"])
            assert ds.format == pb.DATASET_FORMAT_NPZ
            ds = client.upload_dataset(tgz, "colours")
            assert (ds.count, list(ds.class_names), ds.format) == (6, ["blue", "red"], pb.DATASET_FORMAT_TAR)
    finally:
        server.stop()


def test_refused_uploads_leave_nothing_behind(tmp_path: Path):
    data_dir = tmp_path / "data"
    server = start_training_server(data_dir, tmp_path / "models", max_dataset_bytes=200_000,
                                   max_dataset_unpacked_bytes=2_000_000, max_dataset_files=40)
    good = _png((200, 30, 30))
    cases: list[tuple[str, bytes, dict, grpc.StatusCode, str]] = []
    cases.append(("corrupt", b"PK\x03\x04 this is no zip archive" * 10, {}, grpc.StatusCode.INVALID_ARGUMENT,
                  "not a readable zip"))
    whole = _zip(tmp_path / "whole.zip", {f"a/{i}.png": good for i in range(8)}).read_bytes()
    cases.append(("cut-short", whole[: len(whole) // 2], {}, grpc.StatusCode.INVALID_ARGUMENT, "zip"))
    for name in ("../escaped.png", "ok/../../escaped.png", "/tmp/escaped-abs.png", "..\\escaped.png"):
        cases.append(("traversal", _zip(tmp_path / "t.zip", {"fine.png": good, name: good}).read_bytes(), {},
                      grpc.StatusCode.INVALID_ARGUMENT, "archive paths must"))
    link = io.BytesIO()
    with tarfile.open(fileobj=link, mode="w") as tf:
        info = tarfile.TarInfo("img/link.png")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    cases.append(("symlink", link.getvalue(), {"fmt": pb.DATASET_FORMAT_TAR}, grpc.StatusCode.INVALID_ARGUMENT,
                  "is a link"))
    zlink = io.BytesIO()
    with zipfile.ZipFile(zlink, "w") as zf:
        info = zipfile.ZipInfo("img/link.png")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    cases.append(("zip-symlink", zlink.getvalue(), {}, grpc.StatusCode.INVALID_ARGUMENT, "symbolic link"))
    big = np.random.default_rng(0).bytes(300_000)
    cases.append(("oversized", big, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than this server's limit"))
    cases.append(("oversized-declared", big, {"size_bytes": len(big)}, grpc.StatusCode.RESOURCE_EXHAUSTED,
                  "at most 200000"))
    bomb = _zip(tmp_path / "bomb.zip", {"a/zeros.png": bytes(5_000_000)}, zipfile.ZIP_DEFLATED).read_bytes()
    cases.append(("bomb", bomb, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "unpacks to more than"))
    many = _zip(tmp_path / "many.zip", {f"a/{i}.png": good for i in range(41)}).read_bytes()
    cases.append(("many-files", many, {}, grpc.StatusCode.RESOURCE_EXHAUSTED, "more than 40 files"))
    text = _zip(tmp_path / "text.zip", {f"notes/{i}.txt": b"hello" for i in range(5)}).read_bytes()
    cases.append(("no-images", text, {}, grpc.StatusCode.INVALID_ARGUMENT, "no images found"))
    fake = _zip(tmp_path / "fake.zip", {f"x/{i}.png": b"not a png at all" for i in range(3)}).read_bytes()
    cases.append(("undecodable", fake, {}, grpc.StatusCode.INVALID_ARGUMENT, "could be read"))
    cases.append(("sha-mismatch", whole, {"sha256": "0" * 64}, grpc.StatusCode.INVALID_ARGUMENT,
                  "not the declared"))
    cases.append(("bad-name", whole, {"name": "Bad Name"}, grpc.StatusCode.INVALID_ARGUMENT, "must match"))
    cases.append(("builtin-name", whole, {"name": "mnist5k"}, grpc.StatusCode.INVALID_ARGUMENT, "built-in"))
    cases.append(("no-format", whole, {"fmt": pb.DATASET_FORMAT_UNSPECIFIED}, grpc.StatusCode.INVALID_ARGUMENT,
                  "format"))
    try:
        with TrainingClient(server.target) as client:
            for label, data, kw, code, words in cases:
                name = kw.pop("name", "refused")
                with pytest.raises(grpc.RpcError) as err:
                    _raw_upload(client, data, name, **kw)
                assert err.value.code() == code, (label, err.value.code(), err.value.details())
                assert words in err.value.details(), (label, err.value.details())
                assert str(data_dir) not in err.value.details(), label  # no server paths in messages
                assert _files(data_dir / "datasets") == [], label
            with pytest.raises(grpc.RpcError) as err:
                client.stub.UploadDataset(iter([pb.DatasetChunk(data=whole)]), timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "header" in err.value.details()
            assert list(client.list_datasets().datasets) == []
        assert not list(tmp_path.glob("escaped*")) and not Path("/tmp/escaped-abs.png").exists()
        assert _files(data_dir / "datasets") == []
        import urllib.request

        text_metrics = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
        assert 'latentforge_training_dataset_uploads_total{outcome="accepted"} 0.0' in text_metrics
        assert 'latentforge_training_dataset_uploads_total{outcome="too_large"} 4.0' in text_metrics
    finally:
        server.stop()


def test_disk_space_is_checked_at_submit_and_upload(tmp_path: Path):
    server = start_training_server(tmp_path / "data", tmp_path / "models", min_free_disk_bytes=1 << 60)
    try:
        with TrainingClient(server.target) as client:
            with pytest.raises(grpc.RpcError) as err:
                client.submit(tiny_job("dcgan"))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "disk space" in err.value.details()
            archive = _zip(tmp_path / "a.zip", {"a.png": _png((1, 2, 3))})
            with pytest.raises(grpc.RpcError) as err:
                client.upload_dataset(archive, "a")
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "disk space" in err.value.details()
    finally:
        server.stop()
