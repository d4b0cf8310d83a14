"""Style models to serve in tests, exported by the project's own exporter from untrained networks
(``trainer.networks.style``), so the Stylize tests need no training run: an arbitrary-style model
(kind "adain": a style encoder and a stylizer) and a one-style model (kind "style": the
``stylize_fixed`` task). Real ONNX files, real manifests, real ONNX Runtime.
"""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import numpy as np

WIDTH = 8
IMAGE_AXES = {2: ("H", 8), 3: ("W", 8)}


def _write(version_dir: Path, graphs: list, **fields) -> Path:
    """Export ``graphs`` (ExportGraph) into ``version_dir`` and write its manifest beside them."""
    from exporter.onnx_export import export_graph, read_signature
    from latentforge.manifest import FileEntry, Manifest, OutputSpec, Parity, STYLE_MASK_CONVENTION, sha256_file

    version_dir.mkdir(parents=True)
    files, signatures = {}, {}
    for graph in graphs:
        path = version_dir / f"{graph.role}.onnx"
        with warnings.catch_warnings():  # torch's notes that axes sharing constraints keep one name
            warnings.filterwarnings("ignore", message=".*will not be used, since it shares", category=UserWarning)
            export_graph(graph, path)
        files[path.name] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
        signatures[graph.role] = read_signature(path)
    manifest = Manifest(
        version=int(version_dir.name), graphs={g.role: f"{g.role}.onnx" for g in graphs}, files=files,
        signatures=signatures, opset=18, parity=Parity(max_abs_error=0.0, tolerance=1e-4, batch_sizes=(1,)),
        source_checkpoint={}, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        latent_dim=0, num_classes=0, output=OutputSpec(3, 0, 0, (0.0, 1.0)),
        conventions={"style_mask": STYLE_MASK_CONVENTION}, **fields)
    (version_dir / "manifest.json").write_text(manifest.to_json())
    return version_dir


def write_style_model(repo: Path, name: str = "adain-toy", seed: int = 0) -> Path:
    """An arbitrary-style model: ``style_encoder`` (encode_style) and ``stylizer`` (stylize), on a
    random encoder of width 8 and an untrained decoder."""
    import torch

    from trainer.families.base import ExportGraph
    from trainer.networks.style import RandomEncoder, StyleDecoder, StyleEncoder, Stylizer

    torch.manual_seed(seed)
    encoder = RandomEncoder(seed, width=WIDTH)
    stylizer = Stylizer(encoder, StyleDecoder(width=WIDTH)).eval()
    channels = encoder.channels
    content = torch.rand(2, 3, 16, 24)
    graphs = [
        ExportGraph("style_encoder", StyleEncoder(encoder).eval(), (torch.rand(2, 3, 16, 20),), ["style"],
                    ["style_mean", "style_std"], dynamic_axes={"style": {2: ("Hs", 8), 3: ("Ws", 8)}}),
        ExportGraph("stylizer", stylizer,
                    (content, torch.rand(2, channels), torch.rand(2, channels) + 0.5, torch.rand(2),
                     torch.ones(2, 1, 16, 24)),
                    ["content", "style_mean", "style_std", "alpha", "mask"], ["stylized"],
                    dynamic_axes={"content": IMAGE_AXES, "mask": IMAGE_AXES}),
    ]
    return _write(repo / name / "1", graphs, name=name, kind="adain",
                  tasks={"encode_style": "style_encoder", "stylize": "stylizer"})



def write_fixed_style_model(repo: Path, name: str = "one-style-toy", seed: int = 1) -> Path:
    """A one-style model (the ``stylize_fixed`` task): the arbitrary stylizer with the statistics
    of one procedural style image built in."""
    import torch
    from torch import nn

    from trainer.families.base import ExportGraph
    from trainer.networks.style import RandomEncoder, StyleDecoder, StyleEncoder, Stylizer

    torch.manual_seed(seed)
    encoder = RandomEncoder(seed, width=WIDTH)
    stylizer = Stylizer(encoder, StyleDecoder(width=WIDTH)).eval()
    yy, xx = np.mgrid[0:32, 0:32] / 32.0
    style = torch.from_numpy(np.stack([np.sin(6 * xx) * 0.5 + 0.5, yy, 1 - xx]).astype(np.float32))[None]
    with torch.no_grad():
        mean, std = StyleEncoder(encoder)(style)

    class FixedStyle(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stylizer = stylizer
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, content: torch.Tensor, alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            n = content.shape[0]
            return self.stylizer(content, self.mean.expand(n, -1), self.std.expand(n, -1), alpha, mask)

    graph = ExportGraph("stylizer", FixedStyle().eval(), (torch.rand(2, 3, 16, 24), torch.rand(2),
                                                          torch.ones(2, 1, 16, 24)),
                        ["content", "alpha", "mask"], ["stylized"],
                        dynamic_axes={"content": IMAGE_AXES, "mask": IMAGE_AXES})
    return _write(repo / name / "1", [graph], name=name, kind="style", tasks={"stylize_fixed": "stylizer"})


def write_rgb_generator(repo: Path, name: str = "rgb-toy", latent_dim: int = 4, size: int = 16) -> Path:
    """A tiny RGB generator built directly in ONNX (image = tanh(z @ W), 3 x size x size in
    [-1, 1]): its samples are content a Stylize request can name by sample id."""
    from onnx import TensorProto, helper, numpy_helper

    from latentforge.manifest import OutputSpec, Signature, TensorSpec
    from tests.helpers.servers import write_hand_built_model

    rng = np.random.default_rng(2)
    shape = ["N", 3, size, size]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["z", "w"], ["m"]), helper.make_node("Tanh", ["m"], ["t"]),
         helper.make_node("Reshape", ["t", "shape"], ["image"])],
        "rgb", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", latent_dim])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        initializer=[numpy_helper.from_array(rng.standard_normal((latent_dim, 3 * size * size)).astype(np.float32), "w"),
                     numpy_helper.from_array(np.array([-1, 3, size, size], np.int64), "shape")])
    signature = Signature(inputs=(TensorSpec("z", "float32", ("N", latent_dim)),),
                          outputs=(TensorSpec("image", "float32", tuple(shape)),))
    return write_hand_built_model(
        repo / name / "1", {"generator": (graph, signature)}, name=name, kind="gan", latent_dim=latent_dim,
        num_classes=0, output=OutputSpec(channels=3, height=size, width=size, value_range=(-1.0, 1.0)),
        tasks={"sample": "generator", "decode": "generator"})
