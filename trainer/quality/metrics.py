"""Sample-quality metrics on feature arrays (NumPy only): FID, KID, precision/recall, class statistics.

- FID (Heusel et al. 2017): Fréchet distance between Gaussians fitted to the two feature sets.
  Biased upwards at small N, so compare it with a floor measured at the same N.
- KID (Bińkowski et al. 2018): unbiased MMD² with the cubic polynomial kernel
  k(x, y) = (x·y / d + 1)³ on features scaled to unit mean square, averaged over random
  subsets of the real features; unbiased, so near 0 (even slightly negative) for matching
  distributions.
- Precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of balls
  around its points reaching their k-th nearest neighbour; precision is the share of samples
  inside the real manifold (fidelity), recall the share of real images inside the samples'
  manifold (diversity). Both sets should be of the same size.
- Class statistics for a classifier meter: the share of samples read as each class, how many
  classes hold at least half their fair share (coverage), and the share read with confidence
  ≥ 0.9.
"""

from __future__ import annotations

import numpy as np

PR_K = 3
KID_SUBSETS = 10
CONFIDENCE = 0.9
# A class is covered when it holds at least this fraction of its fair share 1/K (10 digits: >= 5%).
COVERAGE_FRACTION = 0.5


def mean_cov(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64) of features (N, D)."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||² + tr(cov1 + cov2 - 2 (cov1 cov2)^½), via symmetric eigendecompositions.

    tr((cov1 cov2)^½) equals the sum of square roots of the eigenvalues of
    cov1^½ cov2 cov1^½, which is symmetric positive semi-definite: numerically safer than a
    general matrix square root, and needs no SciPy.
    """
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    middle = root1 @ cov2 @ root1
    eig = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.sqrt(np.clip(eig, 0.0, None)).sum()
    return float(max(value, 0.0))


def fid(real: np.ndarray | tuple[np.ndarray, np.ndarray], fake: np.ndarray) -> float:
    """FID between real features (or their precomputed mean and covariance) and fake features."""
    mu1, cov1 = real if isinstance(real, tuple) else mean_cov(real)
    mu2, cov2 = mean_cov(fake)
    return frechet_distance(mu1, cov1, mu2, cov2)


def kid(real: np.ndarray, fake: np.ndarray, subsets: int = KID_SUBSETS, seed: int = 0) -> float:
    """Mean unbiased MMD² between all of `fake` and random subsets of `real` of the same size.

    Features should be on a unit scale (see ``unit_scale``): the kernel's "+ 1" then matters.
    """
    real = np.asarray(real, dtype=np.float32)
    fake = np.asarray(fake, dtype=np.float32)
    m = len(fake)
    if m < 2 or len(real) < m:
        raise ValueError(f"KID needs 2 <= fake count <= real count (got {m} and {len(real)})")
    d = real.shape[1]

    def kernel_mean(a: np.ndarray, b: np.ndarray, same: bool) -> float:
        k = (a @ b.T / d + 1.0).astype(np.float64) ** 3
        return (k.sum() - np.trace(k)) / (m * (m - 1)) if same else k.mean()

    kyy = kernel_mean(fake, fake, True)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        values.append(kernel_mean(x, x, True) + kyy - 2.0 * kernel_mean(x, fake, False))
    return float(np.mean(values))


def unit_scale(reference: np.ndarray) -> float:
    """The scale that gives reference features a mean squared value of 1 per dimension."""
    ref = np.asarray(reference, dtype=np.float64)
    return float(np.sqrt((ref * ref).sum(1).mean() / ref.shape[1])) or 1.0


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _kth_radii(points: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point."""
    out = np.empty(len(points), dtype=np.float64)
    for start in range(0, len(points), block):
        d = _squared_distances(points[start : start + block], points)
        out[start : start + block] = np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself
    return out


def _inside(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray, block: int = 1024) -> np.ndarray:
    """Whether each query lies within any centre's ball."""
    hits = np.empty(len(queries), dtype=bool)
    for start in range(0, len(queries), block):
        d = _squared_distances(queries[start : start + block], centres)
        hits[start : start + block] = (d <= radii[None, :]).any(axis=1)
    return hits


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = PR_K) -> tuple[float, float]:
    """Improved precision and recall with k-NN manifolds (Kynkäänniemi et al. 2019)."""
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} features in each set")
    precision = _inside(fake, real, _kth_radii(real, k)).mean()
    recall = _inside(real, fake, _kth_radii(fake, k)).mean()
    return float(precision), float(recall)


def class_stats(probs: np.ndarray, labels: np.ndarray | None = None, confidence: float = CONFIDENCE) -> dict:
    """Class reads of a classifier meter: histogram (shares), coverage, confident share.

    With the labels the samples were asked for (a conditional model), also the share read as
    that label.
    """
    probs = np.asarray(probs)
    n, k = probs.shape
    read = probs.argmax(axis=1)
    shares = np.bincount(read, minlength=k) / n
    stats = {
        "classes": [round(float(s), 4) for s in shares],
        "coverage": int((shares >= COVERAGE_FRACTION / k).sum()),
        "num_classes": k,
        "confident": float((probs.max(axis=1) >= confidence).mean()),
    }
    if labels is not None:
        stats["label_accuracy"] = float((read == np.asarray(labels)).mean())
    return stats
