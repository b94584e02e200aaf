"""Training throughput of the paper-scale models on this CPU (a measurement, not a test).

Run: ``.venv/bin/python tests/models/bench_throughput.py [--threads 2] [--steps 20]``. Each row is
forward + backward + AdamW step on random tokens, steady state after warm-up steps, median of
per-step times (the machine is a shared VM, so the median resists the odd descheduled step).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from coolmix.models import GPT, GPTConfig, Seq2Seq, Seq2SeqConfig, per_example_loss

PAD = 0


def time_steps(
    model: torch.nn.Module, make_loss: Callable[[], torch.Tensor], steps: int, bf16: bool
) -> float:
    """Median seconds per optimisation step after 3 warm-up steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = make_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    v, b, t = 4000, 32, 128
    gpt = GPT(GPTConfig(vocab_size=v, d_model=128, n_layer=4, n_head=4, d_ff=512, max_len=t))
    x = torch.randint(3, v, (b, t + 1))

    def lm_loss() -> torch.Tensor:
        return per_example_loss(gpt(x[:, :-1]), x[:, 1:], PAD)[0].mean()

    print(f"threads={args.threads} torch={torch.__version__}")
    for bf16 in (False, True):
        s = time_steps(gpt, lm_loss, args.steps, bf16)
        name = "bf16-autocast" if bf16 else "fp32"
        print(f"GPT {gpt.num_params() / 1e6:.2f}M V{v} d128 L4 T{t} B{b} {name}: {b * t / s:,.0f} tok/s")

    b, n = 64, 32
    s2s = Seq2Seq(Seq2SeqConfig(vocab_size=v, d_model=128, n_enc=3, n_dec=3, n_head=4, d_ff=512, max_len=64))
    src, tgt = torch.randint(3, v, (b, n)), torch.randint(3, v, (b, n + 1))

    def mt_loss() -> torch.Tensor:
        return per_example_loss(s2s(src, tgt[:, :-1], src == PAD), tgt[:, 1:], PAD)[0].mean()

    for bf16 in (False, True):
        s = time_steps(s2s, mt_loss, args.steps, bf16)
        name = "bf16-autocast" if bf16 else "fp32"
        print(
            f"Seq2Seq {s2s.num_params() / 1e6:.2f}M V{v} d128 3+3 src=tgt={n} B{b} {name}: "
            f"{b / s:,.0f} pairs/s ({2 * b * n / s:,.0f} src+tgt tok/s)"
        )

    s2s.eval()
    src = torch.randint(3, v, (b, n))
    for beam in (1, 4):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            s2s.generate(src, max_new_tokens=n, bos_id=1, eos_id=-1, pad_id=PAD, beam_size=beam)
        dt = time.perf_counter() - t0
        print(f"Seq2Seq generate bf16 beam={beam} B{b} {n} new tokens: {b / dt:,.0f} sentences/s")


if __name__ == "__main__":
    main()
