"""The training loop on real data: smoke runs, the loss it backpropagates, metrics records."""

import math
import shutil
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import coolmix as cm
from coolmix.config import load_file
from coolmix.errors import ConfigError
from coolmix.models import build_model
from coolmix.train import config_hash, load_config, read_records, train
from coolmix.train.loop import CONFIG_FILE, tune_malloc
from coolmix.train.tasks import prepare

EN, SW = 200.0, 8.0  # the tiny config's training sizes


def test_lm_smoke_records_exposure_and_losses(tmp_path, lm_config, data_cache):
    cfg = lm_config()
    result = train(cfg, tmp_path, cache=data_cache)
    records = read_records(tmp_path)
    assert [r["step"] for r in records] == [4, 8] and records[-1] == result
    assert result["final"] and "final" not in records[0]
    for r in records:
        assert sum(r["examples"].values()) == r["step"] * cfg.run.batch_size
        assert r["epochs"] == {"en": r["examples"]["en"] / EN, "sw": r["examples"]["sw"] / SW}
        assert all(r["tokens"][d] > r["examples"][d] or r["examples"][d] == 0 for d in ("en", "sw"))
        assert r["tau"] == 1.0 and r["lr"] > 0 and r["tokens_per_s"] > 0
        for loss in r["dev"]["loss"].values():
            assert 0 < loss < math.log(cfg.tokenizer.vocab_size) + 1
    assert set(result["test"]["loss"]) == {"en", "sw"} and "test" not in records[0]
    # the final record says which code, libraries and machine trained it (and only the final one)
    prov = result["provenance"]
    assert prov["torch"] == torch.__version__ and prov["numpy"] == np.__version__
    assert prov["python"] == sys.version.split()[0] and prov["threads"] == cfg.run.threads
    assert prov["machine"] and "provenance" not in records[0]
    # the resolved config sits next to the run, with its hash, and loads back to the same config
    text = (tmp_path / CONFIG_FILE).read_text()
    assert text.startswith(f"# resolved config; config_hash = {config_hash(cfg)}")
    assert load_config(load_file(tmp_path / CONFIG_FILE)) == cfg


def closed_form_weights(target_tau: float, sample_tau: float) -> np.ndarray:
    """w_i = p_target,i / p_sample,i with p ∝ n^(1/τ), written out for the 200 : 8 mixture."""
    n = np.array([EN, SW])
    p = lambda tau: n ** (1 / tau) / (n ** (1 / tau)).sum()  # noqa: E731
    return p(target_tau) / p(sample_tau)


@pytest.mark.parametrize(
    ("target", "reduction"),
    [("5", "mean"), ("5", "self_normalized"), ("5", "sum"), ('"none"', "mean")],
)
def test_backpropagated_loss_is_the_hand_computed_weighted_loss(
    tmp_path, lm_config, data_cache, monkeypatch, target, reduction
):
    """Step 0's loss equals Σ_b w_{d_b} ℓ_b / B (or / Σ w, or summed), ℓ_b a token mean."""
    cfg = lm_config(
        "model.dropout=0.0",
        "run.batch_size=32",  # 32 · 8/208 = 1.2: the first batch holds one Swahili verse
        "run.total_steps=1",
        "run.eval_every=1",
        "run.test=false",
        f"balance.target={target}",
        f"balance.reduction={reduction}",
    )
    seen = []
    backward = torch.Tensor.backward

    def spy(loss, *args, **kwargs):
        seen.append(loss.detach().clone())
        return backward(loss, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", spy)
    record = train(cfg, tmp_path, cache=data_cache)
    monkeypatch.undo()

    # the same initial model and batch, by hand
    data = prepare(cfg, data_cache)
    torch.manual_seed(cfg.run.seed)
    model = build_model("lm", cfg.model, cfg.tokenizer.vocab_size)
    sampler = cm.MixtureSampler({"en": 200, "sw": 8}, 1.0, total_steps=1, batch_size=32, seed=cfg.run.seed)
    domains, items = sampler.batch(0)
    assert sorted(domains.tolist()) == [0] * 31 + [1]
    batch = data.task.batch(data.splits["train"], domains, items, torch.device("cpu"))
    (tokens,) = batch.inputs
    logits = model(tokens)
    token_ce = F.cross_entropy(
        logits.transpose(1, 2), batch.targets, ignore_index=data.tok.pad_id, reduction="none"
    )
    per_example = token_ce.sum(1) / (batch.targets != data.tok.pad_id).sum(1)
    w = closed_form_weights(5, 1) if target == "5" else np.ones(2)
    wb = torch.tensor(w[domains], dtype=torch.float32)
    norm = {"mean": 32.0, "self_normalized": float(w[domains].sum()), "sum": 1.0}[reduction]
    expected = (wb * per_example).sum() / norm
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected, rtol=2e-6, atol=0)
    assert record["weights"] == pytest.approx(dict(zip(("en", "sw"), w.tolist(), strict=True)), rel=1e-12)
    if target == "5":
        assert record["weights"]["sw"] == pytest.approx(8.954, abs=1e-3)  # p_5 / p_1 for 8 of 208
        assert record["weights"] == pytest.approx(cm.loss_weights({"en": 200, "sw": 8}, 5, 1), rel=1e-12)


def test_weights_follow_a_scheduled_sample(tmp_path, lm_config, data_cache):
    """Upsample at τ=5 for half the run while re-weighting to proportional, then τ=1 and w = 1."""
    cfg = lm_config(
        'balance.sample={kind="cooldown", hot=5, cold=1, at=0.5}', "balance.target=1", "run.test=false"
    )
    train(cfg, tmp_path, cache=data_cache)
    first, last = read_records(tmp_path)
    assert first["tau"] == 5.0 and last["tau"] == 1.0
    assert first["weights"] == pytest.approx(
        dict(zip(("en", "sw"), closed_form_weights(1, 5), strict=True)), rel=1e-12
    )
    assert last["weights"] == {"en": 1.0, "sw": 1.0}


@pytest.mark.data
def test_mt_smoke_decodes_and_scores_each_language(tmp_path, cache_dir, data_cache):
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("gettext corpus needs apt-get and dpkg-deb (Debian/Ubuntu)")
    cfg = load_config(
        {
            "data": {
                "name": "gettext",
                "langs": ["es", "gl", "eo"],
                "options": {"packages": ["libc-l10n"]},  # 0.7 MB: 37 locales of glibc messages
                "dev_size": 8,
                "test_size": 8,
            },
            "tokenizer": {"vocab_size": 300},
            "model": {"d_model": 32, "n_enc": 1, "n_dec": 1, "n_head": 2, "d_ff": 64, "max_len": 32},
            "task": {"src_len": 32, "tgt_len": 32, "decode_len": 8},
            "balance": {"sample": {"kind": "cooldown", "hot": 5, "cold": 1, "at": 0.5}},
            "optim": {"lr": 3e-3, "warmup": 2, "label_smoothing": 0.1},
            "run": {
                "total_steps": 4,
                "batch_size": 8,
                "eval_every": 4,
                "max_decode": 4,
                "cache_dir": str(cache_dir),
            },
        }
    )
    result = train(cfg, tmp_path, cache=data_cache)  # apt-get is there: a failed download fails
    for split in ("dev", "test"):
        for metric in ("loss", "chrf", "chrf++", "bleu"):
            assert set(result[split][metric]) == {"es", "gl", "eo"}, (split, metric)
        assert all(0.0 <= v <= 100.0 for v in result[split]["chrf"].values())
    assert sum(result["examples"].values()) == 4 * 8
    # every test sentence decoded and kept as chrF statistics; its first max_decode give the headline chrF
    from coolmix.train.item_scores import chrf_from_stats

    chrf = result["test_items"]["chrf"]
    assert {k: len(v) for k, v in chrf.items()} == {"es": 8, "gl": 8, "eo": 8}
    for lang, rows in chrf.items():
        assert chrf_from_stats(np.asarray(rows[:4])) == pytest.approx(result["test"]["chrf"][lang], abs=1e-9)


def test_refuses_to_overwrite_a_run_and_to_resume_another_config(tmp_path, lm_config, data_cache):
    cfg = lm_config("run.total_steps=4", "run.eval_every=2")
    first = train(cfg, tmp_path, cache=data_cache)
    with pytest.raises(ConfigError, match="has checkpoints already: pass --resume"):
        train(cfg, tmp_path, cache=data_cache)
    with pytest.raises(ConfigError, match="written by a different config"):
        train(
            lm_config("run.total_steps=4", "run.eval_every=2", "run.seed=1"), tmp_path, True, cache=data_cache
        )
    # a finished run resumes to its final record at once, without touching metrics.jsonl
    before = (tmp_path / "metrics.jsonl").read_bytes()
    assert train(cfg, tmp_path, resume=True, cache=data_cache) == first
    assert (tmp_path / "metrics.jsonl").read_bytes() == before


class ListSink:
    """A `MetricSink` that keeps what it is given."""

    def __init__(self):
        self.records, self.progress_steps, self.closed = [], [], False

    def progress(self, step, status):
        self.progress_steps.append(step)
        assert set(status["loss"]) == {"en", "sw"} and status["tau"] == 1.0

    def write(self, record):
        self.records.append(record)

    def close(self):
        self.closed = True


def test_bf16_with_console_and_a_custom_sink(tmp_path, lm_config, data_cache, capsys):
    cfg = lm_config(
        "run.bf16=true", "run.total_steps=4", "run.eval_every=2", "run.log_every=1", "run.test=false"
    )
    sink = ListSink()
    result = train(cfg, tmp_path, cache=data_cache, console=True, sinks=(sink,))
    assert all(math.isfinite(v) for v in result["dev"]["loss"].values())
    assert sink.records == read_records(tmp_path) and sink.progress_steps == [1, 2, 3, 4] and sink.closed
    assert "dev loss en=" in capsys.readouterr().out


def test_tensorboard_is_optional(tmp_path, lm_config, data_cache):
    cfg = lm_config("run.tensorboard=true", "run.total_steps=2", "run.eval_every=2", "run.test=false")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"run\.tensorboard=True: needs the tensorboard package"):
            train(cfg, tmp_path, cache=data_cache)
    else:
        train(cfg, tmp_path, cache=data_cache)
        assert any((tmp_path / "tb").iterdir())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_malloc_is_accepted_by_glibc():
    assert tune_malloc() is True


def test_a_domain_the_schedule_skips_gets_weight_zero(tmp_path, lm_config, data_cache):
    """Order Matters samples English only in the first half; Swahili, absent there, weighs 0."""
    cfg = lm_config('balance.sample={kind="order_matters", high=["en"], at=0.5}', "balance.target=1")
    train(cfg, tmp_path, cache=data_cache)
    first, last = read_records(tmp_path)
    assert first["probs"] == {"en": 1.0, "sw": 0.0} and first["examples"]["sw"] == 0
    assert first["weights"] == {"en": pytest.approx(200 / 208, rel=1e-12), "sw": 0.0}
    assert last["weights"] == {"en": 1.0, "sw": 1.0}


@pytest.mark.parametrize("reduction", ["mean", "self_normalized", "sum"])
def test_loss_weights_take_weights_and_normaliser_from_step_weights(monkeypatch, reduction):
    """`LossWeights` has no maths of its own: both numbers are `coolmix.step_weights`'s, and the
    device tensor is rebuilt only when p(t) changes (here at the Cooldown switch, step 4)."""
    import coolmix.train.loop as loopmod

    calls = []

    def spy(*args, **kwargs):
        out = cm.step_weights(*args, **kwargs)
        calls.append((kwargs["reduction"], out))
        return cm.StepWeights(out.weights, out.normaliser + 0.5)  # marked: the loop must return this

    monkeypatch.setattr(loopmod, "step_weights", spy)
    sizes = {"en": 200, "sw": 8}
    sampler = cm.MixtureSampler(
        sizes, cm.Cooldown(hot=5, cold=1, at=0.5), total_steps=8, batch_size=6, seed=2
    )
    weights = loopmod.LossWeights(sampler, cm.Temperature(5), reduction, torch.device("cpu"))
    tensors = []
    for step in range(8):
        domains, _ = sampler.batch(step)
        w, norm = weights.at(step)
        p, target = sampler.probs_array(step), cm.Temperature(5).array(sampler.names, sampler.sizes)
        exact = cm.step_weights(p, target, domains, reduction=reduction)
        assert w.tolist() == torch.tensor(exact.weights, dtype=torch.float32).tolist()
        assert norm == exact.normaliser + 0.5
        assert weights.mapping == dict(zip(sampler.names, exact.weights.tolist(), strict=True))
        tensors.append(w)
    assert all(t is tensors[0] for t in tensors[:4]) and all(t is tensors[4] for t in tensors[4:])
    assert tensors[0] is not tensors[4]
    # self_normalized needs Σ_b w_b of every batch; mean (B) and sum (1) only change with p(t)
    assert len(calls) == (8 if reduction == "self_normalized" else 2)
    assert {r for r, _ in calls} == {reduction}
