"""Hostile uploads on a real TrainingService, with real files (scripts/hostile_uploads.py builds
them): each is refused before it costs memory or disk, with the status a client can act on, and
leaves nothing behind. The memory figures are the check process's own (VmHWM read from /proc
while it runs), the disk figures the mounted disk's."""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import grpc
import pytest

from scripts.hostile_uploads import CheckPeak, npz_declaring, npz_of_zeros, object_npz, solid_png, zip_bomb, zip_of_pngs
from services.training.archives import ArchiveError, unpack
from services.training.client import TrainingClient
from tests.helpers.disks import PeakUsage, small_disk
from tests.helpers.training import start_training_server

MiB = 1 << 20


def _left(data_dir: Path) -> list[str]:
    """Everything under the data sets folder, files and folders alike."""
    return sorted(str(p.relative_to(data_dir)) for p in (data_dir / "datasets").rglob("*"))


def _refused(client: TrainingClient, path: Path, name: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        client.upload_dataset(path, name, timeout_s=300)
    return err.value


def test_an_npz_is_refused_by_its_declared_sizes_before_it_is_read(tmp_path: Path):
    """120 MB of zeros in a 117 KB .npz, and an .npz whose header declares
    100 GB, against a 50 MB unpacked limit: RESOURCE_EXHAUSTED from the headers alone."""
    data_dir = tmp_path / "data"
    zeros = npz_of_zeros(tmp_path / "zeros.npz", (120, 1000, 1000))
    lies = npz_declaring(tmp_path / "lies.npz", (100_000, 1000, 1000))
    assert zeros.stat().st_size < 200_000
    server = start_training_server(data_dir, tmp_path / "models", max_dataset_unpacked_bytes=50_000_000)
    try:
        with TrainingClient(server.target) as client:
            for path, declared in ((zeros, "120000128 bytes"), (lies, "100000000000 bytes")):
                with CheckPeak() as peak:
                    err = _refused(client, path, path.stem)
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
                assert f"declares {declared}" in err.details() and "50000000" in err.details(), err.details()
                assert 0 < peak.peak_bytes < 150 * MiB, peak.peaks
                assert _left(data_dir) == []
    finally:
        server.stop()


def test_images_are_decoded_one_at_a_time_and_bombs_refused_before_decoding(tmp_path: Path):
    """Twelve 4000x4000 PNGs (under a 20 Mpx limit) are read holding one
    decoded image at a time; twelve 8000x8000 ones, in a zip or one as an image upload, are
    refused from their headers."""
    data_dir = tmp_path / "data"
    large = zip_of_pngs(tmp_path / "large.zip", 12, 4000)
    bombs = zip_of_pngs(tmp_path / "bombs.zip", 12, 8000)
    one = tmp_path / "one.png"
    one.write_bytes(solid_png(8000, 8000))
    server = start_training_server(data_dir, tmp_path / "models", max_image_pixels=20_000_000)
    try:
        with TrainingClient(server.target) as client:
            with CheckPeak() as peak:
                ds = client.upload_dataset(large, "large", timeout_s=300)
            assert (ds.count, list(ds.shape)) == (12, [3, 64, 64])
            # One decoded 4000x4000 image is 64 MB (Pillow keeps RGB in 4 bytes a pixel); twelve, 768 MB.
            assert 64 * MiB < peak.peak_bytes < 200 * MiB, peak.peaks
            for path, name in ((bombs, "bombs"), (one, "one")):
                with CheckPeak() as peak:
                    err = _refused(client, path, name)
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
                assert "declares more pixels than the limit of 20,000,000" in err.details(), err.details()
                assert str(data_dir) not in err.details()
                assert 0 < peak.peak_bytes < 100 * MiB, peak.peaks
            assert [d.name for d in client.list_datasets().datasets] == ["large"]
    finally:
        server.stop()


def test_the_check_process_memory_is_bounded(tmp_path: Path):
    """An .npz under the size limit whose images need more memory as float32 than the check may
    use: a clear RESOURCE_EXHAUSTED from the bounded check (RLIMIT_AS), not the OOM killer."""
    data_dir = tmp_path / "data"
    fits = npz_of_zeros(tmp_path / "fits.npz", (95, 1000, 1000))
    server = start_training_server(data_dir, tmp_path / "models", max_dataset_unpacked_bytes=200_000_000,
                                   max_check_memory_bytes=512 * MiB)
    try:
        with TrainingClient(server.target) as client:
            with CheckPeak() as peak:
                err = _refused(client, fits, "fits")
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
            assert f"needs more memory than this server gives its check ({512 * MiB} bytes)" in err.details()
            assert peak.peak_bytes < 512 * MiB, peak.peaks
            assert _left(data_dir) == []
    finally:
        server.stop()


def _archives(tmp_path: Path) -> list[tuple[Path, str]]:
    """A zip and a tar.gz of three 1 MB files of zeros."""
    zipped = zip_bomb(tmp_path / "three.zip", 3, MiB)
    tarred = tmp_path / "three.tar.gz"
    with tarfile.open(tarred, "w:gz") as tf:
        for i in range(3):
            info = tarfile.TarInfo(f"bomb/{i:03d}.png")
            info.size = MiB
            tf.addfile(info, io.BytesIO(bytes(MiB)))
    return [(zipped, "zip"), (tarred, "tar")]


def test_an_archive_past_a_limit_writes_nothing(tmp_path: Path):
    """In the unpacker itself: three 1 MB entries against a 2.5 MB limit, or
    against a disk with 2.5 MB free beyond what it keeps free: refused before the first byte."""
    for archive, kind in _archives(tmp_path):
        for limit in ("size", "disk"):
            dest = tmp_path / f"dest-{kind}-{limit}"
            dest.mkdir()
            with pytest.raises(ArchiveError) as err:
                if limit == "size":
                    unpack(archive, kind, dest, max_files=100, max_bytes=5 * MiB // 2)
                else:  # all but 2.5 MB of the disk's free space kept free
                    keep_free = shutil.disk_usage(dest).free - 5 * MiB // 2
                    unpack(archive, kind, dest, max_files=100, max_bytes=1 << 40, keep_free=keep_free)
            assert err.value.limit, str(err.value)
            assert ("disk space" in str(err.value)) == (limit == "disk"), str(err.value)
            assert list(dest.rglob("*")) == [], (kind, limit)
        dest = tmp_path / f"dest-{kind}-ok"
        dest.mkdir()
        assert unpack(archive, kind, dest, max_files=100, max_bytes=3 * MiB) == 3


def test_a_zip_bomb_is_refused_on_a_small_disk_before_it_is_unpacked(tmp_path: Path):
    """On a real 24 MB disk: a zip of four 10 MB files (under the unpacked
    limit, over the free space) is refused with RESOURCE_EXHAUSTED, and the disk never held more
    than the upload itself; nothing is left."""
    bomb = zip_bomb(tmp_path / "bomb.zip", 4, 10 * MiB)
    with small_disk(tmp_path / "disk", 24 * MiB) as disk:
        data_dir = disk / "data"
        server = start_training_server(data_dir, tmp_path / "models", max_dataset_unpacked_bytes=1 << 30)
        try:
            with TrainingClient(server.target) as client, PeakUsage(disk) as usage:
                err = _refused(client, bomb, "bomb")
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
            assert "not enough disk space" in err.details(), err.details()
            assert usage.peak_bytes < 4 * MiB, usage.peak_bytes  # the 40 KB upload and the store, no unpacked file
            assert _left(data_dir) == []
        finally:
            server.stop()


def test_pickled_object_arrays_are_refused_as_such(tmp_path: Path):
    """The refusal says object arrays are not accepted."""
    data_dir = tmp_path / "data"
    server = start_training_server(data_dir, tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            err = _refused(client, object_npz(tmp_path / "objects.npz"), "objects")
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
            assert "object arrays (pickled Python objects) are not accepted ('images')" in err.details(), err.details()
            assert _left(data_dir) == []
    finally:
        server.stop()


def test_a_refused_upload_and_a_deleted_data_set_leave_no_folder(tmp_path: Path):
    """No empty staging folder (datasets/.uploads) stays behind."""
    data_dir = tmp_path / "data"
    archive = tmp_path / "one.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a/one.png", solid_png(16, 16))
    server = start_training_server(data_dir, tmp_path / "models")
    try:
        with TrainingClient(server.target) as client:
            corrupt = tmp_path / "corrupt.zip"
            corrupt.write_bytes(b"PK\x03\x04 not a zip" * 10)
            assert _refused(client, corrupt, "corrupt").code() == grpc.StatusCode.INVALID_ARGUMENT
            assert _left(data_dir) == []
            ds = client.upload_dataset(archive, "one")
            assert [p.name for p in (data_dir / "datasets").iterdir()] == [ds.dataset_id]
            client.delete_dataset("one")
            assert _left(data_dir) == []
    finally:
        server.stop()


def test_the_pixel_limit_stays_within_what_the_jobs_accept():
    """A job's process keeps Pillow's own decompression-bomb limit: the server's may not pass it."""
    import dataclasses

    from PIL import Image

    from services.rpc.settings import ConfigError
    from services.training.config import PILLOW_MAX_PIXELS, TrainingConfig

    assert Image.MAX_IMAGE_PIXELS == PILLOW_MAX_PIXELS
    assert TrainingConfig().validate().max_image_pixels <= PILLOW_MAX_PIXELS
    with pytest.raises(ConfigError, match="max_image_pixels must be 1..89478485"):
        dataclasses.replace(TrainingConfig(), max_image_pixels=PILLOW_MAX_PIXELS + 1).validate()
