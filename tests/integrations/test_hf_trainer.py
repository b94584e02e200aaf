"""HF Trainer integration on a tiny randomly initialised GPT-2 (built from a config; nothing downloaded).

Covers: the dataloader is the core sampler's stream cut into rank/accumulation micro-batches;
gradients under accumulation equal the full global batch's (and a hand-computed reference);
checkpoint resume continues the exact stream and parameters; the logs carry the ledger, τ and
per-domain eval losses.
"""

import copy
import doctest
import json
import os
import shutil
import socket
import subprocess
import sys
from itertools import chain
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import coolmix as cm  # noqa: E402
from coolmix.errors import ConfigError  # noqa: E402
from coolmix.integrations.hf import STATE_FILE, MicroBatchSampler, PadCollator  # noqa: E402
from coolmix.integrations.ranks import DataParallel  # noqa: E402

try:
    import datasets as hfds
    import transformers
except ImportError:  # the torch-only tests still run
    hfds = transformers = None
needs_hf = pytest.mark.skipif(
    transformers is None, reason="needs `pip install transformers accelerate datasets` (coolmix[hf])"
)

VOCAB = 64
SIZES = {"en": 24, "it": 7, "sw": 3}


def token_ids(d, i, length):
    """Sequence of item i of domain d: tokens 0/1 say (domain, index), the rest vary with the length."""
    return [d + 1, i + 5] + [(7 * i + 3 * d + k) % (VOCAB - 2) + 2 for k in range(length - 2)]


def domains(sizes=SIZES, seed=0, min_len=3, max_len=11):
    rng = np.random.default_rng(seed)
    out = {}
    for d, (name, n) in enumerate(sizes.items()):
        ids = [token_ids(d, i, int(rng.integers(min_len, max_len + 1))) for i in range(n)]
        out[name] = hfds.Dataset.from_dict({"input_ids": ids, "note": [f"{name}{i}" for i in range(n)]})
    return out


def tiny_model(dropout=0.0):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=1,
        n_embd=32,
        n_head=2,
        vocab_size=VOCAB,
        n_positions=32,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=1,
        eos_token_id=1,
    )
    return transformers.GPT2LMHeadModel(cfg)


def training_args(out, **kw):
    base = dict(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=1,
        use_cpu=True,
        report_to=[],
        dataloader_num_workers=0,
        save_strategy="no",
        logging_steps=1,
        max_grad_norm=0.0,
        disable_tqdm=True,
        seed=0,
    )
    base.update(kw)
    return transformers.TrainingArguments(**base)


def make_trainer(args, model=None, **kw):
    """A MixtureTrainer that records the (step, domains, indices) of every training micro-batch."""
    from coolmix.integrations.hf import MixtureTrainer

    class Recording(MixtureTrainer):
        seen: list

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                self.seen.append(
                    (self.state.global_step, inputs["domain"].tolist(), inputs["index"].tolist())
                )
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    kw.setdefault("train_datasets", domains())
    kw.setdefault("schedule", 3.0)
    t = Recording(tiny_model() if model is None else model, args, **kw)
    t.seen = []
    return t


def grad_catcher():
    """A callback that copies the gradients right before the first optimizer step."""

    class GradCatcher(transformers.TrainerCallback):
        grads = None

        def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
            if self.grads is None:
                self.grads = {
                    n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
                }

    return GradCatcher()


# -- torch-only pieces ------------------------------------------------------------------------------


def test_import_is_lazy_and_errors_without_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "import coolmix.integrations.hf as h\n"
        "assert h.PadCollator and h.MicroBatchSampler\n"
        "from coolmix.errors import ConfigError\n"
        "try:\n    h.MixtureTrainer\nexcept ConfigError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ERR transformers" in out.stdout and "pip install coolmix[hf]" in out.stdout
    code = "import sys, coolmix.integrations.hf; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_doctests():
    import coolmix.integrations.hf as hf

    assert doctest.testmod(hf).failed == 0


def test_pad_collator_pads_masks_and_makes_labels():
    batch = PadCollator(pad_token_id=9)(
        [{"input_ids": [1, 2, 3], "score": 1.5, "tag": "x"}, {"input_ids": [4], "score": 2.0, "tag": "y"}]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[1, 2, 3], [4, -100, -100]]
    assert batch["score"].tolist() == [1.5, 2.0] and batch["tag"] == ["x", "y"]
    given = PadCollator(pad_to_multiple_of=4)(
        [{"input_ids": [1, 2], "labels": [7, 8]}, {"input_ids": [3], "labels": [9]}]
    )
    assert given["labels"].tolist() == [[7, 8, -100, -100], [9, -100, -100, -100]]


def test_micro_batches_are_the_core_stream_split_by_rank_then_accumulation():
    def sampler():
        return cm.MixtureSampler(SIZES, 3.0, total_steps=5, batch_size=12, seed=3)

    core = sampler()
    offsets = np.concatenate([[0], np.cumsum(list(SIZES.values()))])
    expected = [(offsets[d] + i).tolist() for d, i in (core.global_batch(t) for t in range(5))]
    per_rank = [list(MicroBatchSampler(sampler(), 2, 3, dp=DataParallel(r, 2))) for r in range(2)]
    for r in range(2):
        assert len(per_rank[r]) == 15 and all(len(b) == 2 for b in per_rank[r])
    for t in range(5):
        rank0 = list(chain(*per_rank[0][3 * t : 3 * t + 3]))
        rank1 = list(chain(*per_rank[1][3 * t : 3 * t + 3]))
        assert rank0 + rank1 == expected[t]
    with pytest.raises(ConfigError, match="per-rank batch"):
        MicroBatchSampler(sampler(), 4, 2, dp=DataParallel(0, 2))
    # resumed at step 3 (any split of the same global batch), it yields steps 3.. and keeps its length
    s = sampler()
    s.global_batch(2)
    mb = MicroBatchSampler(sampler(), 12, 1, dp=DataParallel(0, 1))
    mb.load_state_dict(s.state_dict())
    assert len(mb) == 5 and list(mb) == expected[3:]


# -- the Trainer ------------------------------------------------------------------------------------


@needs_hf
def test_dataloader_carries_domains_and_follows_the_sampler(tmp_path):
    args = training_args(tmp_path, max_steps=3, per_device_train_batch_size=3, gradient_accumulation_steps=2)
    trainer = make_trainer(args)
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == 6
    core = cm.MixtureSampler(SIZES, 3.0, total_steps=3, batch_size=6, seed=0)
    for t in range(3):
        d, i = core.global_batch(t)
        got = batches[2 * t : 2 * t + 2]
        assert torch.cat([b["domain"] for b in got]).tolist() == d.tolist()
        assert torch.cat([b["index"] for b in got]).tolist() == i.tolist()
        for b in got:
            assert b["domain"].dtype == torch.long
            assert set(b) == {"input_ids", "attention_mask", "labels", "domain", "index", "domain_name"}
            # tokens 0/1 encode (domain, index): the payload is the tagged example's
            assert (b["input_ids"][:, 0] == b["domain"] + 1).all() and (
                b["input_ids"][:, 1] == b["index"] + 5
            ).all()
            assert ((b["labels"] == -100) == (b["attention_mask"] == 0)).all()
            assert b["domain_name"] == [list(SIZES)[k] for k in b["domain"].tolist()]


WEIGHTINGS = [
    ("mean", "token", {"target": 5.0}),
    ("self_normalized", "token", {"loss_weights": {"en": 0.5, "it": 2.0, "sw": 4.0}}),
    ("mean", "sequence", {"loss_weights": {"en": 0.5, "it": 2.0, "sw": 4.0}}),
    ("self_normalized", "sequence", {"target": float("inf")}),
]


def reference_grads(model, examples, domain_ids, w, reduction, unit):
    """The full global batch's loss by hand (no coolmix loss code), and its gradients."""
    model = copy.deepcopy(model)
    batch = PadCollator(0)(examples)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]
    logp = torch.log_softmax(logits[:, :-1].float(), -1)
    mask = labels != -100
    nll = -logp.gather(-1, labels.clamp_min(0)[..., None])[..., 0] * mask
    tok_sum, n = nll.sum(1), mask.sum(1).float()
    wb = torch.tensor(w, dtype=torch.float32)[torch.tensor(domain_ids)]
    if unit == "token":
        num, den = (wb * tok_sum).sum(), (n if reduction == "mean" else wb * n).sum()
    else:
        mean_b = tok_sum / n
        num, den = (wb * mean_b).sum(), (len(n) if reduction == "mean" else wb.sum())
    (num / den).backward()
    return {k: p.grad for k, p in model.named_parameters() if p.grad is not None}, (tok_sum, n, wb)


@needs_hf
@pytest.mark.parametrize(("reduction", "unit", "weighting"), WEIGHTINGS)
def test_gradient_accumulation_matches_the_full_global_batch(tmp_path, reduction, unit, weighting):
    init = tiny_model()
    grads = {}
    for accum, per_device in ((2, 4), (1, 8)):
        catcher = grad_catcher()
        args = training_args(
            tmp_path / f"ga{accum}", gradient_accumulation_steps=accum, per_device_train_batch_size=per_device
        )
        trainer = make_trainer(
            args, model=copy.deepcopy(init), reduction=reduction, unit=unit, callbacks=[catcher], **weighting
        )
        trainer.train()
        assert len(trainer.seen) == accum
        grads[accum] = catcher.grads
        w = trainer.coolmix_weights_at(0)
    # the same examples went in: the core stream's step 0 with batch 8
    d, i = cm.MixtureSampler(SIZES, 3.0, total_steps=1, batch_size=8, seed=0).global_batch(0)
    data = domains()
    examples = [{"input_ids": data[list(SIZES)[a]][int(b)]["input_ids"]} for a, b in zip(d, i, strict=True)]
    ref, (tok_sum, n, wb) = reference_grads(init, examples, d.tolist(), w, reduction, unit)
    assert grads[2].keys() == grads[1].keys() == ref.keys()
    for k in ref:
        torch.testing.assert_close(grads[2][k], grads[1][k], atol=1e-6, rtol=0)
        torch.testing.assert_close(grads[1][k], ref[k], atol=1e-6, rtol=0)
    # the test has power: the naive "mean per micro-batch ÷ accumulation" is another loss whenever
    # the two micro-batches' normalisers differ (token counts, or weight sums when self-normalised)
    with torch.no_grad():
        halves = [slice(0, 4), slice(4, 8)]
        per_ex = tok_sum if unit == "token" else tok_sum / n
        size = n if unit == "token" else torch.ones_like(n)
        if reduction == "self_normalized":
            size = wb * size
        den = [size[h].sum() for h in halves]
        naive = sum((wb[h] * per_ex[h]).sum() / den[k] for k, h in enumerate(halves)) / 2
        full = (wb * per_ex).sum() / sum(den)
        if not torch.isclose(den[0], den[1]):
            assert abs(float(naive) - float(full)) > 1e-4
        else:
            assert unit == "sequence"


DDP_SCRIPT = """
import sys, json, torch
sys.path.insert(0, sys.argv[1])
import test_hf_trainer as T
out = sys.argv[2]
catcher = T.grad_catcher()
args = T.training_args(out, per_device_train_batch_size=4, ddp_backend="gloo")
trainer = T.make_trainer(args, reduction="self_normalized", unit="token", target=5.0, callbacks=[catcher])
trainer.train()
rank = trainer.args.process_index
torch.save({"grads": catcher.grads, "seen": trainer.seen, "world": trainer.args.world_size,
            "ledger": trainer.coolmix_ledger.state_dict()}, f"{out}/rank{rank}.pt")
"""


@pytest.mark.slow  # multi-process (torchrun / SIGKILL): the slow job
@needs_hf
def test_two_ddp_processes_match_one(tmp_path):
    """torchrun, 2 CPU processes (gloo): DDP-averaged gradients equal the 1-process global batch's."""
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    cmd += [f"--master_port={port}", str(script), str(Path(__file__).parent), str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]

    catcher = grad_catcher()
    args = training_args(tmp_path / "one", per_device_train_batch_size=8)
    one = make_trainer(args, reduction="self_normalized", unit="token", target=5.0, callbacks=[catcher])
    one.train()
    # each rank consumed its contiguous half of the same global batch; both ledgers saw all of it
    ((step, d, i),) = one.seen
    assert [r["seen"] for r in ranks] == [[(step, d[:4], i[:4])], [(step, d[4:], i[4:])]]
    assert ranks[0]["ledger"] == ranks[1]["ledger"] == one.coolmix_ledger.state_dict()
    for k, g in catcher.grads.items():
        for r in ranks:
            torch.testing.assert_close(r["grads"][k], g, atol=1e-6, rtol=0, msg=k)


@needs_hf
def test_hybrid_weights_follow_the_sampling_schedule(tmp_path):
    args = training_args(tmp_path, max_steps=10)
    trainer = make_trainer(args, schedule=cm.Cooldown(hot=100.0, cold=2.0, at=0.5), target=5.0)
    trainer.get_train_dataloader()
    for step, tau in ((0, 100.0), (9, 2.0)):
        expected = cm.loss_weights(SIZES, target=5.0, sample=tau)
        np.testing.assert_allclose(trainer.coolmix_weights_at(step), list(expected.values()), rtol=1e-12)
    static = make_trainer(args, loss_weights=cm.scalarization_weights(SIZES, tau=5.0), schedule=1.0)
    np.testing.assert_allclose(
        static.coolmix_weights_at(7), list(cm.scalarization_weights(SIZES, 5.0).values())
    )


@needs_hf
def test_resume_from_checkpoint_continues_the_exact_stream(tmp_path, caplog):
    common = dict(
        max_steps=6,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        save_strategy="steps",
        save_steps=3,
    )
    schedule = cm.Cooldown(hot=10.0, cold=1.0, at=4)  # the switch lies after the checkpoint
    full = make_trainer(training_args(tmp_path / "a", **common), schedule=schedule, target=3.0)
    full.train()
    ckpt = tmp_path / "a" / "checkpoint-3"
    saved = json.loads((ckpt / STATE_FILE).read_text())
    assert saved["step"] == 3 and saved["sampler"]["step"] == 3 and saved["ledger"]["steps"] == 3

    resumed = make_trainer(training_args(tmp_path / "b", **common), schedule=schedule, target=3.0)
    resumed.train(resume_from_checkpoint=str(ckpt))
    assert resumed.args.ignore_data_skip
    tail = [s for s in full.seen if s[0] >= 3]
    assert [s[0] for s in tail] == [3, 3, 4, 4, 5, 5]
    assert resumed.seen == tail  # same (domain, index) at steps 3-5: no replay, no double skip
    for (name, p), (_, q) in zip(
        full.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0, msg=name)
    last = [r["loss"] for r in full.state.log_history if "loss" in r][-1]
    assert [r["loss"] for r in resumed.state.log_history if "loss" in r][-1] == pytest.approx(last, abs=1e-6)
    assert resumed.coolmix_ledger.state_dict() == full.coolmix_ledger.state_dict()
    assert resumed.coolmix_batch_sampler.state_dict(step=6) == full.coolmix_batch_sampler.state_dict(step=6)

    # a checkpoint without coolmix's file (e.g. from a plain Trainer) is replayed, with a warning
    bare = tmp_path / "bare" / "checkpoint-3"
    shutil.copytree(ckpt, bare)
    (bare / STATE_FILE).unlink()
    replayed = make_trainer(training_args(tmp_path / "c", **common), schedule=schedule, target=3.0)
    caplog.set_level("WARNING", logger="coolmix")
    replayed.train(resume_from_checkpoint=str(bare))
    assert "replaying the sampler" in caplog.text
    assert replayed.seen == tail


@needs_hf
def test_logs_carry_ledger_tau_and_per_domain_eval_losses(tmp_path):
    args = training_args(
        tmp_path,
        max_steps=4,
        per_device_train_batch_size=4,
        eval_strategy="steps",
        eval_steps=4,
        logging_steps=2,
    )
    data = domains()
    evals = {name: ds.select(range(3)) for name, ds in data.items()}
    trainer = make_trainer(
        args,
        train_datasets=data,
        schedule=cm.Cooldown(hot=100.0, cold=1.0, at=2),
        target=5.0,
        eval_dataset=evals,
    )
    trainer.train()
    train_logs = [r for r in trainer.state.log_history if "loss" in r]
    assert [r["coolmix/tau"] for r in train_logs] == [100.0, 1.0]
    last = train_logs[-1]
    summary = trainer.coolmix_ledger.summary()
    assert sum(summary[n]["examples"] for n in SIZES) == 16
    for name in SIZES:
        assert last[f"coolmix/{name}/examples"] == summary[name]["examples"]
        assert last[f"coolmix/{name}/epochs"] == pytest.approx(summary[name]["epochs"])
        assert last[f"coolmix/{name}/weight"] == pytest.approx(
            trainer.coolmix_weights_at(3)[list(SIZES).index(name)]
        )
    assert sum(last[f"coolmix/{n}/share"] for n in SIZES) == pytest.approx(1.0)
    assert any(f"coolmix/{n}/train_loss" in last for n in SIZES)
    evals_logged = {k: v for r in trainer.state.log_history for k, v in r.items() if k.startswith("eval_")}
    per_domain = [evals_logged[f"eval_{n}_loss"] for n in SIZES]
    assert evals_logged["eval_macro_loss"] == pytest.approx(np.mean(per_domain))
    assert evals_logged["eval_worst_loss"] == pytest.approx(max(per_domain))
    # eval losses are plain (unweighted) token means: compare one by hand
    model = trainer.model.eval()
    batch = PadCollator(0)([{"input_ids": x} for x in evals["sw"]["input_ids"]])
    with torch.no_grad():
        ref = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss
    assert evals_logged["eval_sw_loss"] == pytest.approx(float(ref), abs=1e-5)


@needs_hf
def test_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match="max_steps"):
        make_trainer(training_args(tmp_path, max_steps=-1, num_train_epochs=1))
    with pytest.raises(ConfigError, match="not both"):
        make_trainer(training_args(tmp_path), loss_weights={"en": 1, "it": 1, "sw": 1}, target=5.0)
    with pytest.raises(ConfigError, match="reduction"):
        make_trainer(training_args(tmp_path), reduction="sum")
    with pytest.raises(ConfigError, match="unit"):
        make_trainer(training_args(tmp_path), unit="char")
    with pytest.raises(ConfigError, match="no weight"):
        make_trainer(training_args(tmp_path), loss_weights={"en": 1.0})
    with pytest.raises(ConfigError, match="unknown domain"):
        make_trainer(training_args(tmp_path), loss_weights={"en": 1, "it": 1, "sw": 1, "xx": 1})
    with pytest.raises(ConfigError, match="sets it itself"):
        make_trainer(training_args(tmp_path), train_dataset=domains()["en"])
    with pytest.raises(ConfigError):
        make_trainer(training_args(tmp_path), schedule=-1.0)


@needs_hf
def test_resume_is_bit_exact_under_dropout_and_keeps_the_epoch(tmp_path):
    """The Trainer's RNG states are restored after iter(dataloader): max|Δθ| = 0 with dropout 0.1."""
    common = dict(
        max_steps=6,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        save_strategy="steps",
        save_steps=3,
    )
    full = make_trainer(training_args(tmp_path / "a", **common), model=tiny_model(dropout=0.1), target=3.0)
    full.train()
    resumed = make_trainer(training_args(tmp_path / "b", **common), model=tiny_model(dropout=0.1), target=3.0)
    resumed.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-3"))
    assert resumed.seen == [s for s in full.seen if s[0] >= 3]
    deltas = [
        float((p - q).detach().abs().max())
        for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True)
    ]
    assert max(deltas) == 0.0
    # the test has power: dropout is on, so another RNG stream (no rng_state.pth) moves the parameters
    (tmp_path / "a" / "checkpoint-3" / "rng_state.pth").unlink()
    torch.manual_seed(123)
    unseeded = make_trainer(
        training_args(tmp_path / "d", **common), model=tiny_model(dropout=0.1), target=3.0
    )
    torch.manual_seed(123)
    unseeded.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-3"))
    moved = max(
        float((p - q).detach().abs().max())
        for p, q in zip(full.model.parameters(), unseeded.model.parameters(), strict=True)
    )
    assert moved > 0.0

    # the epoch shown after resume is the uninterrupted run's (global_step / max_steps)
    def epochs(t):
        return {r["step"]: r["epoch"] for r in t.state.log_history if "loss" in r}

    assert epochs(full) == {k: k / 6 for k in range(1, 7)}
    assert epochs(resumed) == epochs(full)  # steps 1-3 come from the checkpoint's history


@needs_hf
def test_per_domain_log_keys_can_be_switched_off(tmp_path):
    args = training_args(tmp_path, max_steps=2, per_device_train_batch_size=4)
    on, off = make_trainer(args, target=5.0), make_trainer(args, target=5.0, log_domains=False)
    on.train()
    off.train()
    log_on = [r for r in on.state.log_history if "loss" in r][-1]
    log_off = [r for r in off.state.log_history if "loss" in r][-1]
    assert any(k.startswith("coolmix/en/") for k in log_on)
    assert not any(k.startswith("coolmix/") and k != "coolmix/tau" for k in log_off)
    assert log_off["coolmix/tau"] == log_on["coolmix/tau"] == 3.0
    assert log_off["loss"] == log_on["loss"]  # logging changes nothing else


def per_token(batch, relabel=None):
    """The batch with per-token domain ids (B, T): the row's id, −1 at padding, optionally relabelled."""
    ids = batch["domain"][:, None].expand_as(batch["input_ids"]).clone()
    if relabel is not None:
        ids = relabel(ids)
    return {**batch, "domain": ids.masked_fill(batch["attention_mask"] == 0, -1)}


@needs_hf
@pytest.mark.parametrize("reduction", ["mean", "self_normalized"])
def test_per_token_domain_ids_weight_each_token(tmp_path, reduction):
    args = training_args(tmp_path, max_steps=1, per_device_train_batch_size=4, gradient_accumulation_steps=2)
    trainer = make_trainer(args, target=5.0, reduction=reduction)
    loader = trainer.get_train_dataloader()
    model = trainer.model.train()
    torch.manual_seed(0)

    def step_loss(batches):
        got, norm = trainer.get_batch_samples(iter(batches), len(batches))
        return sum(float(trainer.compute_loss(model, b, num_items_in_batch=norm)) for b in got)

    rows = list(loader)
    # (B, T) ids equal to the row's id give exactly the (B,) loss
    assert step_loss([per_token(b) for b in rows]) == pytest.approx(step_loss(rows), rel=1e-6)

    # tokens from position 3 on belong to domain 2 (as in a packed row): compare with a hand sum
    def mixed(ids):
        ids[:, 3:] = 2
        return ids

    batches = [per_token(b, mixed) for b in rows]
    w = torch.tensor(trainer.coolmix_weights_at(0), dtype=torch.float32)
    num = den = 0.0
    with torch.no_grad():
        for b in batches:
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            labels, ids = b["labels"][:, 1:], b["domain"][:, 1:]
            ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
            keep = labels != -100
            wt = w[ids.clamp_min(0)] * keep
            num += float((wt * ce).sum())
            den += float(wt.sum() if reduction == "self_normalized" else keep.sum())
    assert step_loss(batches) == pytest.approx(num / den, rel=1e-5)
    with pytest.raises(ConfigError, match="unit='token'"):
        seq = make_trainer(args, target=5.0, unit="sequence")
        seq.get_train_dataloader()
        seq.get_batch_samples(iter(batches), 2)
