"""The seed GAN step (D step + G step, batch 128) in PyTorch, for the `train` benchmark.

Prints `ms_per_step <value>`. Same architecture and recipe as trainer's seed preset.
"""
import argparse
import time

import torch
from torch import nn


def gen_block(i, o):
    return nn.Sequential(nn.Linear(i, o), nn.BatchNorm1d(o), nn.ReLU(inplace=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    z_dim, batch = 64, 128
    gen = nn.Sequential(
        gen_block(z_dim, 128), gen_block(128, 256), gen_block(256, 512), gen_block(512, 1024),
        nn.Linear(1024, 784), nn.Sigmoid())
    disc = nn.Sequential(
        nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
        nn.Linear(256, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
    gen, disc = gen.to(dev), disc.to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-5, betas=(0.9, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-5, betas=(0.9, 0.999))
    crit = nn.BCEWithLogitsLoss()
    # The batch comes from host memory each step, as a data loader's would (ours copies too).
    real_host = torch.rand(batch, 784)

    def step():
        real = real_host.to(dev)
        opt_d.zero_grad()
        fake = gen(torch.randn(batch, z_dim, device=dev))
        pf = disc(fake.detach())
        pr = disc(real)
        d_loss = (crit(pf, torch.zeros_like(pf)) + crit(pr, torch.ones_like(pr))) / 2
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        fake = gen(torch.randn(batch, z_dim, device=dev))
        pf = disc(fake)
        g_loss = crit(pf, torch.ones_like(pf))
        g_loss.backward()
        opt_g.step()
        return d_loss.item(), g_loss.item()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    ms = (time.perf_counter() - t0) * 1e3 / a.steps
    print(f"ms_per_step {ms:.3f}")


if __name__ == "__main__":
    main()
