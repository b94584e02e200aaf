"""The tiny real-text overrides the reproduction's end-to-end tests train with (seconds a run)."""

TINY_LM = (
    "data.train_sizes={ en = 400, it = 60, zh = 20, sw = 8 }",
    "data.dev_size=24",
    "data.test_size=24",
    "tokenizer.vocab_size=300",
    "model.d_model=32",
    "model.n_layer=1",
    "model.d_ff=64",
    "task.seq_len=24",
    "run.total_steps=12",
    "run.eval_batches=1",
    "run.batch_size=8",
)
"""Bible LM at toy size; each test adds its own ``run.eval_every`` (and cache dir)."""
