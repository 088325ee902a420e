"""Diagnostic: blind Poisson denoising against other time maps on synthetic fluorescence
(the clean-signal σ map is an oracle that leaks the clean image; see docs/training.md).

    python benchmarks/diag_poisson_timemap.py [model]
"""
import numpy as np, torch, sys
from scipy import ndimage
torch.set_num_threads(1)
from napari_diffdenoise import denoise, add_noise, synthetic_fluorescence, estimate_noise
model = sys.argv[1] if len(sys.argv) > 1 else "default"
gain, read, offset = 1.0, 2.0, 100.0
for peak in (50., 200.):
    res = {}
    for i in range(3):
        x = synthetic_fluorescence((256, 256), kind="mixed", seed=i)
        ph = peak * x.astype(np.float64); clean = offset + ph
        noisy = add_noise(ph, "poisson_gaussian", gain=gain, read_noise=read, offset=offset, seed=1000+i)
        rng = ph.max()
        ps = lambda e: 10*np.log10(rng**2/np.mean((e-clean)**2))
        def sig_from(sig_img):
            return np.sqrt(np.maximum(gain*(sig_img-offset),0) + read**2).astype(np.float32)
        out = denoise(noisy, model=model)
        res.setdefault("blind", []).append(ps(out))
        res.setdefault("clean-signal map (oracle, leaks)", []).append(
            ps(denoise(noisy, sigma=sig_from(clean), model=model)))
        res.setdefault("smooth1.5 true params", []).append(ps(denoise(noisy, sigma=sig_from(ndimage.gaussian_filter(noisy.astype(np.float32),1.5)), model=model)))
        o = out
        for k in range(2):
            o = denoise(noisy, sigma=sig_from(o), model=model)
            res.setdefault(f"refine{k+1}", []).append(ps(o))
        o2 = denoise(noisy, sigma=sig_from(ndimage.gaussian_filter(out,1.0)), model=model)
        res.setdefault("refine smooth1", []).append(ps(o2))
        res.setdefault("const rms", []).append(ps(denoise(noisy, sigma=float(np.sqrt(np.mean(gain*ph+read**2))), model=model)))
    print(peak, {k: round(np.mean(v),2) for k,v in res.items()}, flush=True)
