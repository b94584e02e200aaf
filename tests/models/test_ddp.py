"""Both models train under DDP (one gloo process) without `find_unused_parameters`, also in bf16."""

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from coolmix.models import per_example_loss

PAD = 0


@pytest.fixture
def process_group(tmp_path):
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _steps(ddp: DDP, inputs: tuple, targets: torch.Tensor, n: int = 3) -> list[float]:
    """n AdamW steps; DDP raises on the second backward if any parameter went unused."""
    opt = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    losses = []
    for _ in range(n):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = per_example_loss(ddp(*inputs), targets, PAD)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_gpt_under_ddp(process_group, make_gpt):
    x = torch.randint(3, 32, (4, 13))
    losses = _steps(DDP(make_gpt(dropout=0.1)), (x[:, :-1],), x[:, 1:])
    assert losses[-1] < losses[0]


def test_seq2seq_under_ddp(process_group, make_seq2seq):
    src = torch.randint(3, 32, (4, 9))
    src[1, 5:] = PAD
    tgt = torch.randint(3, 32, (4, 7))
    losses = _steps(DDP(make_seq2seq(dropout=0.1)), (src, tgt[:, :-1], src == PAD), tgt[:, 1:])
    assert losses[-1] < losses[0]
