"""Quality evidence for a trained prior: denoising error and a sample grid beside training images.

For held-out procedural phantoms x1 and fixed noise x0, at t ∈ {0.25, 0.5, 0.75, 0.9} it reports
the RMSE of the prior's denoiser x̂1 = x_t + (1 − t)·v(x_t, t) against x1, side by side with two
references computed in the same run: the best constant guess (the held-out mean image) and the
rescaled input x_t / t. Also writes a PNG with prior samples above training images.

    python tools/prior_quality.py --prior results/prior-64 [--n 64] [--png results/prior-64/quality.png]
"""

from __future__ import annotations

import argparse

import torch

from ctflow.data.abdomen import AbdomenPhantomDataset
from ctflow.priors import load_prior
from ctflow.priors.ode import odeint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", required=True)
    ap.add_argument("--n", type=int, default=64, help="held-out images")
    ap.add_argument("--png", default=None)
    ap.add_argument("--steps", type=int, default=50, help="Heun steps for the sample grid")
    args = ap.parse_args()
    prior = load_prior(args.prior)
    s = prior.image_size
    train_cfg = prior.meta.get("card", {}).get("training", {})
    held = AbdomenPhantomDataset(args.n, size=s, seed=987_654, kind=train_cfg.get("phantom_kind", "mixed"),
                                 ellipse_fraction=train_cfg.get("ellipse_fraction", 0.2))
    x1 = torch.stack([held[i][0] for i in range(len(held))])
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(x1.shape, generator=g)
    mean_img = x1.mean(0, keepdim=True)
    print(f"# prior {args.prior}: {s}x{s}, {len(x1)} held-out phantoms (seeds disjoint from training)")
    print("| t | prior denoiser RMSE | mean-image RMSE | x_t/t RMSE |")
    print("|---|---|---|---|")

    def r(a):
        return float(((a - x1) ** 2).mean().sqrt())

    with torch.no_grad():
        for t in (0.25, 0.5, 0.75, 0.9):
            xt = t * x1 + (1 - t) * x0
            den = prior.denoise(xt, t)
            print(f"| {t} | {r(den):.4f} | {r(mean_img.expand_as(x1)):.4f} | {r(xt / t):.4f} |")
        if args.png:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            n = 8
            smp = odeint(prior, torch.randn(n, 1, s, s, generator=torch.Generator().manual_seed(0)), steps=args.steps, method="heun").clamp(0, 1)
            fig, ax = plt.subplots(2, n, figsize=(1.3 * n, 2.8))
            for i in range(n):
                ax[0, i].imshow(smp[i, 0], cmap="gray", vmin=0, vmax=1)
                ax[1, i].imshow(x1[i, 0], cmap="gray", vmin=0, vmax=1)
                ax[0, i].axis("off")
                ax[1, i].axis("off")
            ax[0, 0].set_title("prior samples", fontsize=8, loc="left")
            ax[1, 0].set_title("training-distribution phantoms", fontsize=8, loc="left")
            fig.tight_layout()
            fig.savefig(args.png, dpi=90)
            print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
