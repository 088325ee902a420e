"""Diagnostic: real pairs denoised with the blind σ map scaled by k (is the estimate the limit?).

    python benchmarks/diag_pairs_sigma_scale.py [model] [threads]
"""
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
from skimage import io
from pathlib import Path
from napari_diffdenoise import denoise, estimate_noise
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "microscopy_pairs"
model = sys.argv[1] if len(sys.argv) > 1 else "default"
def affine(e, r):
    A = np.stack([e.ravel(), np.ones(e.size)], 1); c, *_ = np.linalg.lstsq(A, r.ravel(), rcond=None)
    return (A @ c).reshape(e.shape)
res = {}
for name in ("fmd_r1", "fmd_bpae_r", "w2s_010"):
    n = io.imread(DATA / f"{name}_noisy.png"); c = io.imread(DATA / f"{name}_clean.png")
    if n.ndim == 3: n, c = n[..., 0], c[..., 0]
    c = c.astype(np.float64); rng = c.max() - c.min()
    ps = lambda e: 10*np.log10(rng**2/np.mean((affine(e.astype(np.float64), c)-c)**2))
    rep = estimate_noise(n)
    sm = rep.sigma_map.astype(np.float32)
    row = []
    for k in (0.7, 1.0, 1.3, 1.6, 2.0, 2.5):
        row.append(round(ps(denoise(n, sigma=k*sm, model=model, output_dtype=np.float32)), 2))
    row.append(round(ps(denoise(n, sigma=float(np.sqrt(np.mean(sm**2))), model=model, output_dtype=np.float32)), 2))
    print(name, rep.kind, "scales 0.7,1,1.3,1.6,2,2.5, const:", row, flush=True)
