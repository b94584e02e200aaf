"""MixtureTrainer: a Hugging Face Trainer fed by a coolmix Cooldown schedule, with loss weights.

Run: python examples/hf_trainer.py (needs ``pip install coolmix[hf]``). Trains a tiny, randomly
initialised GPT-2 (built from a config, nothing downloaded) for 8 steps on three toy domains,
checkpoints at step 4, resumes from it, and checks the resumed run is bit-identical (dropout on).
"""

import tempfile
from pathlib import Path

import datasets
import torch
import transformers

import coolmix as cm
from coolmix.integrations.hf import MixtureTrainer

VOCAB = 64


def toy_domain(token, n):
    """n sequences of one repeated token (the domain is visible in the data), lengths 4..11."""
    return datasets.Dataset.from_dict({"input_ids": [[token] * (4 + i % 8) for i in range(n)]})


def tiny_gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=32)
    return transformers.GPT2LMHeadModel(config)  # dropout 0.1 by default


train = {"en": toy_domain(5, 200), "it": toy_domain(6, 20), "sw": toy_domain(7, 3)}
evals = {name: ds.select(range(3)) for name, ds in train.items()}


def trainer(out):
    args = transformers.TrainingArguments(
        out,
        max_steps=8,  # the sampler's total_steps: Cooldown switches at 50%
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        save_strategy="steps",
        save_steps=4,
        logging_steps=4,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    return MixtureTrainer(
        tiny_gpt2(),
        args,
        train_datasets=train,
        schedule=cm.Cooldown(hot=5.0, cold=1.0, at=0.5),  # sample at τ=5, then proportionally
        target=5.0,  # weight losses by p_τ=5 / p_sample(t): the τ=5 objective throughout
        eval_dataset=evals,
    )


transformers.logging.set_verbosity_error()
with tempfile.TemporaryDirectory() as tmp:
    full = trainer(str(Path(tmp) / "full"))
    full.train()
    for record in full.state.log_history:
        if "loss" in record:
            print(
                f"step {record['step']}: loss {record['loss']:.3f}, τ {record['coolmix/tau']}, "
                f"sw share {record['coolmix/sw/share']:.2f}"
            )
    print({k: round(v, 3) for k, v in full.evaluate().items() if k.endswith("_loss")})

    resumed = trainer(str(Path(tmp) / "resumed"))
    resumed.train(resume_from_checkpoint=str(Path(tmp) / "full" / "checkpoint-4"))
    delta = max(
        float((p - q).detach().abs().max())
        for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True)
    )
    print(f"resumed from step 4: max|Δθ| = {delta}")
    assert delta == 0.0
