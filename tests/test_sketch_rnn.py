"""The sketch-rnn family: its losses against direct computations, the encoder against a packed
bidirectional LSTM, the step decoder against teacher forcing, seeded drawing, a short real
training run on simple shapes (squares, circles, zigzags, crosses drawn as stroke-5), and the
exported graphs in ONNX Runtime against torch."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from exporter.onnx_export import export_graph, measure_parity, read_signature
from trainer.checkpoint import load_checkpoint
from trainer.config import TrainConfig, with_options_added_later
from trainer.data import Batch, DataSpec
from trainer.families import FAMILIES, family_class, restore_family
from trainer.families.configs import SketchRNNConfig
from trainer.families.sketch_rnn import drop_points, random_strokes, render_strokes, trim_to_end
from trainer.loop import bucket_by_length, train
from trainer.losses import bivariate_mixture_log_prob, kl_per_dimension, stroke_reconstruction_loss
from trainer.networks.sketch_rnn import START_POINT, SketchRNNModel, StrokeEncoder

STEPS = 40  # T of the shape set
TINY = dict(enc_rnn=16, dec_rnn=32, latent_dim=8, mixtures=3)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- a small real data set: shapes as pen strokes --------------------------------------------------

def polyline_strokes(strokes: list[np.ndarray]) -> np.ndarray:
    """Strokes of absolute points (each (K, 2)) -> stroke-5 rows: offsets from the previous point
    (the first from the origin), p1 while the stroke goes on, p2 at its last point."""
    rows, prev = [], np.zeros(2)
    for stroke in strokes:
        for j, point in enumerate(stroke):
            pen = (0, 1, 0) if j == len(stroke) - 1 else (1, 0, 0)
            rows.append([*(point - prev), *pen])
            prev = point
    return np.asarray(rows, np.float32)


def shape_drawings(n: int, seed: int = 0) -> list[np.ndarray]:
    """n sketches of four kinds (square, circle, zigzag, cross), randomly rotated, scaled and
    jittered, as unnormalised stroke-5 rows."""
    rng = np.random.default_rng(seed)
    drawings = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            strokes = [np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], float)]
        elif kind == 1:
            a = np.linspace(0, 2 * np.pi, 17)
            strokes = [np.stack([np.cos(a), np.sin(a)], 1)]
        elif kind == 2:
            strokes = [np.stack([np.arange(8) / 4, (np.arange(8) % 2) * 0.5], 1)]
        else:
            strokes = [np.array([[0, 0], [1, 1]], float), np.array([[0, 1], [1, 0]], float)]
        angle, scale = rng.uniform(0, 2 * np.pi), rng.uniform(5, 10)
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        drawings.append(polyline_strokes([(s @ turn.T) * scale + rng.normal(0, 0.1, s.shape) + 3 for s in strokes]))
    return drawings


def shape_set(n: int, steps: int = STEPS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The shapes as the data contract has them: stroke-5 (n, steps, 5) padded with (0, 0, 0, 0, 1),
    offsets divided by their std (unit scale), and their lengths."""
    out = np.zeros((n, steps, 5), np.float32)
    out[..., 4] = 1
    lengths = np.zeros(n, np.int64)
    for i, rows in enumerate(shape_drawings(n, seed)):
        out[i, :len(rows)] = rows
        lengths[i] = len(rows)
    real = np.arange(steps)[None, :] < lengths[:, None]
    out[..., :2] /= out[..., :2][real].std()
    return out, lengths


def family(n: int = 64, seed: int = 0, **options):
    torch.manual_seed(seed)
    strokes, lengths = shape_set(n)
    spec = DataSpec(source="shapes", count=n, shape=(STEPS, 5), fields=("strokes", "lengths"))
    fam = family_class("sketch-rnn")(SketchRNNConfig(**{**TINY, **options}), spec, torch.device("cpu"))
    return fam, torch.from_numpy(strokes), torch.from_numpy(lengths)


# --- losses ---------------------------------------------------------------------------------------

def _random_mixture(shape: tuple[int, ...], m: int, g: torch.Generator):
    return (torch.randn(*shape, m, generator=g), torch.randn(*shape, m, generator=g),
            torch.randn(*shape, m, generator=g), torch.rand(*shape, m, generator=g) + 0.2,
            torch.rand(*shape, m, generator=g) + 0.2, torch.rand(*shape, m, generator=g) * 1.8 - 0.9)


def test_mixture_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    pi, mu_x, mu_y, sx, sy, rho = _random_mixture((50,), 5, g)
    x, y = torch.randn(50, generator=g), torch.randn(50, generator=g)
    cov = torch.stack([torch.stack([sx ** 2, rho * sx * sy], -1), torch.stack([rho * sx * sy, sy ** 2], -1)], -2)
    direct = MixtureSameFamily(Categorical(logits=pi), MultivariateNormal(torch.stack([mu_x, mu_y], -1), cov))
    want = direct.log_prob(torch.stack([x, y], -1))
    got = bivariate_mixture_log_prob(pi, mu_x, mu_y, sx, sy, rho, x, y)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_reconstruction_loss_masks_offsets_by_length_and_scores_pens_over_every_step():
    g = torch.Generator().manual_seed(2)
    n, t, m = 4, 12, 3
    mix = _random_mixture((n, t), m, g)
    pen_logits = torch.randn(n, t, 3, generator=g)
    target, lengths = random_strokes(n, t, g)
    offsets, pen = stroke_reconstruction_loss(*mix, pen_logits, target, lengths)
    # direct: the sum over real points of -log p, and over all steps of the pen cross-entropy, over T
    log_p = bivariate_mixture_log_prob(*mix, target[..., 0], target[..., 1])
    want_offsets = torch.stack([-log_p[i, :lengths[i]].sum() / t for i in range(n)]).mean()
    want_pen = -(torch.log_softmax(pen_logits, -1) * target[..., 2:]).sum(-1).sum(1).div(t).mean()
    torch.testing.assert_close(offsets, want_offsets)
    torch.testing.assert_close(pen, want_pen)
    # offsets past a sequence's end do not count; its pen states do
    changed = target.clone()
    pad = torch.arange(t)[None, :] >= lengths[:, None]
    changed[..., 0][pad] = 100.0
    assert torch.equal(stroke_reconstruction_loss(*mix, pen_logits, changed, lengths)[0], offsets)
    changed[..., 2:][pad] = torch.tensor([1.0, 0.0, 0.0])
    if pad.any():
        assert not torch.equal(stroke_reconstruction_loss(*mix, pen_logits, changed, lengths)[1], pen)


def test_pen_loss_to_end_counts_the_points_and_the_end_state_only():
    g = torch.Generator().manual_seed(6)
    n, t, m = 5, 12, 3
    mix = _random_mixture((n, t), m, g)
    pen_logits = torch.randn(n, t, 3, generator=g)
    target, _ = random_strokes(n, t, g)
    lengths = torch.tensor([1, 4, 7, 9, 12])
    target = torch.where((torch.arange(t)[None, :] < lengths[:, None])[..., None], target,
                         torch.tensor((0.0, 0.0, 0.0, 0.0, 1.0)))
    offsets, pen = stroke_reconstruction_loss(*mix, pen_logits, target, lengths, steps=40, pen_to_end=True)
    ce = -(torch.log_softmax(pen_logits, -1) * target[..., 2:]).sum(-1)
    want_pen = torch.stack([ce[i, :min(int(lengths[i]) + 1, t)].sum() / 40 for i in range(n)]).mean()
    torch.testing.assert_close(pen, want_pen)
    torch.testing.assert_close(offsets, stroke_reconstruction_loss(*mix, pen_logits, target, lengths)[0] * t / 40)
    # the end state's logits count, the padding's after it do not
    after = pen_logits.clone()
    for i in range(n - 1):
        after[i, int(lengths[i]) + 1:, 0] += 5.0
    assert torch.equal(stroke_reconstruction_loss(*mix, after, target, lengths, steps=40, pen_to_end=True)[1], pen)
    at_end = pen_logits.clone()
    at_end[0, 1, 0] += 5.0
    assert not torch.equal(stroke_reconstruction_loss(*mix, at_end, target, lengths, steps=40, pen_to_end=True)[1],
                           pen)


def test_a_batch_cut_after_its_longest_end_state_has_the_padded_batchs_loss_and_gradients():
    torch.manual_seed(7)
    net = SketchRNNModel(8, 16, 6, 3)
    strokes, lengths = (torch.from_numpy(a) for a in shape_set(12))
    eps = torch.randn(12, 6)
    cut = trim_to_end(strokes, lengths)
    assert cut.shape[1] == int(lengths.max()) + 1 < strokes.shape[1]
    results = []
    for batch in (strokes, cut):
        net.zero_grad()
        mix, mu, presig = net(batch, lengths, eps)
        offsets, pen = stroke_reconstruction_loss(*mix, batch, lengths, steps=STEPS, pen_to_end=True)
        (offsets + pen + kl_per_dimension(mu, presig)).backward()
        results.append((offsets.detach(), pen.detach(), [p.grad.clone() for p in net.parameters()]))
    (o1, p1, g1), (o2, p2, g2) = results
    torch.testing.assert_close(o2, o1, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(p2, p1, rtol=1e-6, atol=1e-7)
    for a, b in zip(g2, g1):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    # a drawing of the full T has no end state: nothing is cut
    full = lengths.clone()
    full[0] = STEPS
    assert trim_to_end(strokes, full).shape[1] == STEPS


# --- networks -------------------------------------------------------------------------------------

def test_encoder_reads_each_sequence_like_a_packed_bidirectional_lstm():
    torch.manual_seed(3)
    encoder = StrokeEncoder(hidden=8, latent_dim=4).eval()
    packed = torch.nn.LSTM(5, 8, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for suffix, rnn in (("", encoder.forward_rnn), ("_reverse", encoder.backward_rnn)):
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(packed, name + suffix).copy_(getattr(rnn, name))
    strokes, lengths = random_strokes(6, 15, torch.Generator().manual_seed(3))
    _, (h, _) = packed(torch.nn.utils.rnn.pack_padded_sequence(strokes, lengths, batch_first=True,
                                                               enforce_sorted=False))
    want_mu, want_presig = encoder.head(torch.cat([h[0], h[1]], dim=1)).chunk(2, dim=1)
    mu, presig = encoder(strokes, lengths)
    torch.testing.assert_close(mu, want_mu, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(presig, want_presig, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"layer_norm": True}, {"latent_dim": 0}])
def test_step_decoder_in_a_loop_reproduces_teacher_forcing(options):
    torch.manual_seed(4)
    opts = {"enc_rnn": 8, "dec_rnn": 16, "latent_dim": 6, "mixtures": 3, **options}
    net = SketchRNNModel(opts["enc_rnn"], opts["dec_rnn"], opts["latent_dim"], opts["mixtures"],
                    layer_norm=opts.get("layer_norm", False)).eval()
    strokes, _ = random_strokes(3, 10, torch.Generator().manual_seed(4))
    z = torch.randn(3, opts["latent_dim"]) if opts["latent_dim"] else None
    inputs = torch.cat([torch.tensor(START_POINT).expand(3, 1, 5), strokes[:, :-1]], dim=1)
    with torch.no_grad():
        full = net.decoder(inputs, z)
        h, c = net.decoder.initial_state(z, 3)
        for t in range(10):
            mix, h, c = net.decoder.step(inputs[:, t], z, h, c)
            for got, want in zip(mix, full):
                torch.testing.assert_close(got, want[:, t], rtol=1e-5, atol=1e-5)


def test_drop_points_keeps_the_drawing_and_shortens_it():
    strokes, lengths = (torch.from_numpy(a) for a in shape_set(16))
    torch.manual_seed(5)
    dropped, new_lengths = drop_points(strokes, lengths, 0.5)
    assert (new_lengths <= lengths).all() and (new_lengths < lengths).any()
    for i in range(16):
        before = strokes[i, :lengths[i]]
        after = dropped[i, :new_lengths[i]]
        # the pen's path ends where it did, the pen lifts as often, and the padding is end rows
        torch.testing.assert_close(after[:, :2].sum(0), before[:, :2].sum(0), rtol=1e-5, atol=1e-5)
        assert after[:, 3].sum() == before[:, 3].sum()
        assert (dropped[i, new_lengths[i]:] == torch.tensor([0.0, 0, 0, 0, 1])).all()
    assert torch.equal(drop_points(strokes, lengths, 0.0)[0], strokes)


# --- the family -----------------------------------------------------------------------------------

def test_registered_with_its_options():
    entry = FAMILIES["sketch-rnn"]
    assert entry.load().kind == "stroke_vae"
    assert SketchRNNConfig(kl_decay_rate=1.5).problems()
    assert not SketchRNNConfig().problems()


def _step_beside_reference(pen_loss: str):
    """One training step of a fresh family, and the same model's mixture on the batch (untrained
    copy, same seed): (the step's record, the mixture, strokes, lengths)."""
    fam, strokes, lengths = family(n=16, scale_augment=0.0, pen_loss=pen_loss)
    reference = copy.deepcopy(fam.modules["sketch_rnn"])
    torch.manual_seed(11)
    record = fam.train_step(Batch(strokes=strokes, lengths=lengths), 0)
    torch.manual_seed(11)
    with torch.no_grad():
        mix, _, _ = reference(strokes, lengths)
    return record, mix, strokes, lengths


def test_train_step_to_end_scores_the_whole_padded_batch():
    record, mix, strokes, lengths = _step_beside_reference("to_end")
    offsets, pen = stroke_reconstruction_loss(*mix, strokes, lengths, pen_to_end=True)
    assert record["offset_nll"] == pytest.approx(float(offsets), rel=1e-5)
    assert record["pen_nll"] == pytest.approx(float(pen), rel=1e-5)
    # all_steps keeps the paper's L_p over every padded step
    record, mix, strokes, lengths = _step_beside_reference("all_steps")
    _, pen = stroke_reconstruction_loss(*mix, strokes, lengths)
    assert record["pen_nll"] == pytest.approx(float(pen), rel=1e-5)


def test_length_buckets_group_similar_lengths_and_keep_every_example():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 36, 200).tolist()
    indices = rng.permutation(200).tolist()
    out = bucket_by_length(indices, lengths, 16, 4, (0, 3))
    assert out == bucket_by_length(indices, lengths, 16, 4, (0, 3))  # a function of (seed, epoch)
    assert out != bucket_by_length(indices, lengths, 16, 4, (0, 4))
    assert len(out) == 192 and sorted(out) == sorted(indices[:192])
    batches = [out[i:i + 16] for i in range(0, 192, 16)]
    # each batch is a run of 16 of its pool (4 batches' worth of the epoch's order) sorted by length
    runs = [sorted(indices[i:i + 64], key=lambda i: lengths[i]) for i in range(0, 192, 64)]
    assert sorted(batches) == sorted(r[k:k + 16] for r in runs for k in range(0, 64, 16))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 15  # against about 33 for batches as drawn


def test_old_runs_keep_the_pen_loss_and_batches_they_trained_with():
    old = {"model": "sketch-rnn", "data": "kanjivg:simple", "out": "x",
           "sketch-rnn": {k: v for k, v in SketchRNNConfig().to_dict().items()
                          if k not in ("pen_loss", "length_buckets")}}
    cfg = TrainConfig.from_dict(with_options_added_later(old))
    assert cfg.family.pen_loss == "all_steps" and cfg.family.length_buckets == 0


# The padding's pen states (all_steps) are learnt first and fast; to_end counts the points and end states only.
@pytest.mark.parametrize(("pen_loss", "drop"), [("to_end", 0.05), ("all_steps", 0.3)])
def test_training_on_shapes_lowers_the_reconstruction_loss(pen_loss, drop):
    fam, strokes, lengths = family(pen_loss=pen_loss)
    g = torch.Generator().manual_seed(0)
    records = []
    for step in range(60):
        index = torch.randperm(len(strokes), generator=g)[:16]
        records.append(fam.train_step(Batch(strokes=strokes[index], lengths=lengths[index]), step))
    assert {"recon_nll", "offset_nll", "pen_nll", "kl", "kl_weight", "grad_norm", "lr"} <= set(records[-1])
    assert all(math.isfinite(r["loss"]) for r in records)
    first = np.mean([r["recon_nll"] for r in records[:5]])
    last = np.mean([r["recon_nll"] for r in records[-5:]])
    assert last < first - drop, (first, last)
    assert records[0]["kl_weight"] == pytest.approx(0.01) and records[-1]["kl_weight"] > 0.01


def test_unconditional_trains_and_draws_without_z():
    fam, strokes, lengths = family(unconditional=True)
    assert fam.latent_dim == 0 and fam.tasks == {"draw_strokes": "decoder_step"}
    metrics = fam.train_step(Batch(strokes=strokes[:8], lengths=lengths[:8]), 0)
    assert "kl" not in metrics and math.isfinite(metrics["loss"])
    drawn, drawn_lengths = fam.draw(None, 1.0, generator=torch.Generator().manual_seed(0), n=3)
    assert drawn.shape == (3, STEPS, 5) and drawn_lengths.shape == (3,)


def test_drawing_is_reproducible_from_a_generator_and_renders_images():
    fam, strokes, lengths = family()
    z = torch.randn(4, TINY["latent_dim"])
    a = fam.draw(z, 0.8, generator=torch.Generator().manual_seed(7))
    b = fam.draw(z, 0.8, generator=torch.Generator().manual_seed(7))
    c = fam.draw(z, 0.8, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    drawn, drawn_lengths = a
    real = torch.arange(STEPS)[None, :] < drawn_lengths[:, None]
    assert (drawn[..., 2:].sum(-1) == 1).all() and (drawn[~real] == torch.tensor([0.0, 0, 0, 0, 1])).all()
    images = fam.sample(z)
    assert images.shape == (4, 1, 64, 64) and 0 <= images.min() and images.max() <= 1
    shapes = render_strokes(strokes[:4], lengths[:4], 32)
    assert (shapes.flatten(1).max(1).values == 1).all()  # every shape leaves ink
    grids = fam.extra_grids(Batch(strokes=strokes[:3], lengths=lengths[:3]))
    assert grids["recon"].shape == (6, 1, 64, 64)
    mu, logvar = fam.encode(strokes[:3], lengths[:3])
    assert mu.shape == logvar.shape == (3, TINY["latent_dim"])


@pytest.mark.parametrize("unconditional", [False, True])
def test_exported_graphs_match_torch_in_onnx_runtime(tmp_path: Path, unconditional: bool):
    fam, strokes, lengths = family(unconditional=unconditional)
    fam.train_step(Batch(strokes=strokes[:8], lengths=lengths[:8]), 0)
    graphs = {g.role: g for g in fam.export_graphs()}
    assert set(graphs) == ({"decoder_step"} if unconditional else {"encoder", "init_state", "decoder_step"})
    sessions = {}
    for role, graph in graphs.items():
        path = tmp_path / f"{role}.onnx"
        export_graph(graph, path)
        assert measure_parity(graph, path) < 1e-4, role
        signature = read_signature(path, graph.optional_inputs)
        assert [s.name for s in signature.outputs] == graph.output_names
        sessions[role] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # the sampling loop as the service runs it: ONNX Runtime steps fed teacher-forced points
    # give the teacher-forced full-sequence decoder's outputs
    net = fam.modules["sketch_rnn"].eval()
    n, hidden = 3, TINY["dec_rnn"]
    inputs = torch.cat([torch.tensor(START_POINT).expand(n, 1, 5), strokes[:n, :-1]], dim=1)
    if unconditional:
        z = None
        h = c = np.zeros((n, hidden), np.float32)
    else:
        mu, _ = sessions["encoder"].run(["mu", "logvar"], {"strokes": strokes[:n].numpy(),
                                                                "lengths": lengths[:n].numpy()})
        with torch.no_grad():
            want_mu, _ = net.encoder(strokes[:n], lengths[:n])
        np.testing.assert_allclose(mu, want_mu.numpy(), rtol=1e-4, atol=1e-5)
        z = torch.from_numpy(mu)
        h, c = sessions["init_state"].run(["h", "c"], {"z": mu})
    with torch.no_grad():
        full = net.decoder(inputs, z)
    names = graphs["decoder_step"].output_names
    for t in range(STEPS):
        feeds = {"point": inputs[:, t].numpy(), "h": h, "c": c}
        if z is not None:
            feeds["z"] = z.numpy()
        *mix, h, c = sessions["decoder_step"].run(names, feeds)
        for got, want in zip(mix, full):
            np.testing.assert_allclose(got, want[:, t].numpy(), rtol=1e-3, atol=1e-4)


# --- through the training loop --------------------------------------------------------------------

@pytest.fixture
def shape_file(tmp_path: Path) -> str:
    """The shapes as a sketch-rnn .npz file: stroke-3 int16 drawings (dx, dy, pen lifted) in `train`."""
    drawings = [np.concatenate([np.round(d[:, :2] * 10), d[:, 3:4]], 1).astype(np.int16) for d in shape_drawings(64)]
    train = np.empty(len(drawings), dtype=object)
    train[:] = drawings
    path = tmp_path / "shapes.npz"
    np.savez(path, train=train, valid=train[:8], test=train[:8])
    return str(path)


def test_the_loop_trains_resumes_exactly_and_draws_grids(tmp_path: Path, shape_file: str):
    def config(out: Path, steps: int) -> TrainConfig:
        return TrainConfig.from_dict(dict(model="sketch-rnn", data=shape_file, out=out, steps=steps, batch_size=16,
                                          grid_size=4, sample_every=6, checkpoint_every=6, log_every=3, threads=1,
                                          progress=False, eval_every=0, drop_points=0.1, **TINY))

    straight = train(config(tmp_path / "straight", 12))
    train(config(tmp_path / "resumed", 6))
    resumed = train(config(tmp_path / "resumed", 12), resume=True)
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    for name, tensor in a["modules"]["sketch_rnn"].items():
        assert torch.equal(tensor, b["modules"]["sketch_rnn"][name]), name
    rows = [json.loads(line) for line in straight.metrics.read_text().splitlines()]
    assert rows[-1]["step"] == 12 and {"recon_nll", "kl", "kl_weight", "grad_norm"} <= set(rows[-1])
    samples = {p.name for p in (straight.run_dir / "samples").iterdir()}
    assert {"latest.png", "recon_latest.png", "step_00000012.png"} <= samples
    info = json.loads((straight.run_dir / "run.json").read_text())
    assert (info["family"], info["kind"]) == ("sketch-rnn", "stroke_vae") and info["data"]["shape"][1] == 5
    family = restore_family(a)
    assert family.stroke_scale == pytest.approx(info["data"]["stroke_scale"]) and family.stroke_scale > 1


def test_kanjivg_trains_from_the_command_line_and_exports_with_a_passing_loop_parity(tmp_path: Path, capsys):
    """The README's command on the real kanji numerals, then export: the three graphs, the
    manifest's stroke spec, and the step graph's loop parity on the drawings the run held out."""
    from latentforge.cli import main
    from latentforge.manifest import Manifest, verify_files

    out = tmp_path / "run"
    assert main(["train", "--model", "sketch-rnn", "--data", "kanjivg:digits", "--steps", "4", "--batch-size", "8",
                 "--threads", "1", "--eval-every", "0", "--sample-every", "4", "--checkpoint-every", "4",
                 "--latent-dim", "8", "--enc-rnn", "16", "--dec-rnn", "32", "--mixtures", "3", "--hold-out", "0.2",
                 "--out", str(out)]) == 0
    assert (out / "samples" / "latest.png").is_file()
    assert main(["export", str(out), "--repo", str(tmp_path / "models"), "--name", "kanji-sketch",
                 "--evaluate", "20"]) == 0
    version = tmp_path / "models" / "kanji-sketch" / "1"
    manifest = Manifest.read(version)
    verify_files(version, manifest)
    assert manifest.kind == "stroke_vae" and manifest.latent_dim == 8
    assert manifest.tasks == {"encode_strokes": "encoder", "init_state": "init_state", "draw_strokes": "decoder_step",
                              "sample": "init_state"}
    info = json.loads((out / "run.json").read_text())
    spec = manifest.strokes
    assert spec is not None and (spec.max_steps, spec.mixtures, spec.hidden) == (info["data"]["shape"][0], 3, 32)
    assert spec.scale == pytest.approx(info["data"]["stroke_scale"]) and spec.temperature > 0
    assert manifest.output.shape == (1, 64, 64) and "strokes" in manifest.conventions
    assert 0 <= manifest.parity.per_graph["decoder_step@loop"] < 1e-3
    assert manifest.training["hold_out"]["share"] == 0.2
    scores = manifest.quality.scores
    assert scores["source"] == "export" and scores["task"] == "draw_strokes" and scores["n"] == 20
    assert all(math.isfinite(scores[k]) for k in ("offset_nll", "pen_nll", "kl", "total"))
    from latentforge.strokes import quality_summary

    assert quality_summary(scores).startswith(f"held-out L_s {scores['offset_nll']:.3f}")
    again = Manifest.from_dict(json.loads(manifest.to_json()))
    assert again.strokes == spec


def test_an_unconditional_model_exports_its_step_alone(tmp_path: Path, shape_file: str):
    from exporter.repository import export_run
    from latentforge.manifest import Manifest

    config = TrainConfig.from_dict(dict(model="sketch-rnn", data=shape_file, out=tmp_path / "run", steps=2,
                                        batch_size=8, threads=1, progress=False, eval_every=0, unconditional=True,
                                        sample_every=2, checkpoint_every=2, **TINY))
    train(config)
    manifest = Manifest.read(export_run(tmp_path / "run", tmp_path / "models", "shapes"))
    assert manifest.latent_dim == 0 and manifest.tasks == {"draw_strokes": "decoder_step"}
    step = manifest.signatures["decoder_step"]
    assert step.input("z") is None and step.input("h").optional and step.input("c").optional
    assert manifest.parity.per_graph["decoder_step@loop"] < 1e-3
