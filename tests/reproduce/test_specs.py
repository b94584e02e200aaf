"""Presets: experiments, overrides, seeds, and one-line errors for bad choices."""

import pytest

from coolmix.errors import ConfigError
from coolmix.reproduce.specs import PRESETS, preset


def test_presets_cover_every_experiment_and_full_has_three_seeds():
    for name in ("quick", "full"):
        assert {e.key for e in PRESETS[name].experiments} == {"convergence", "lm", "mt"}
    # the full evidence in parts: full-lm + full-mt = full
    parts = [e.key for n in ("full-lm", "full-mt") for e in PRESETS[n].experiments]
    assert sorted(parts) == sorted(e.key for e in PRESETS["full"].experiments)
    assert all(e.seeds == (0, 1, 2) for e in PRESETS["full"].experiments)


def test_only_overrides_and_seeds():
    p = preset("quick", ("run.total_steps=7",), ("lm",), (3, 4))
    (e,) = p.experiments
    assert e.key == "lm" and e.seeds == (3, 4) and e.base["run"]["total_steps"] == 7
    assert PRESETS["quick"].experiments[1].base["run"]["total_steps"] != 7  # presets are not mutated


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"name": "huge"}, "preset"), ({"only": ("nope",)}, "only"), ({"seeds": (-1,)}, "seeds")],
)
def test_bad_choices(kwargs, field):
    args = {"name": "quick", **kwargs}
    with pytest.raises(ConfigError) as e:
        preset(args.pop("name"), **args)
    assert e.value.field == field


def test_sizes_of_a_corpus_capped_on_some_languages_are_read_from_the_corpus(monkeypatch):
    """mt-overfit caps only ga: the other languages' sizes are the corpus's, never dropped."""
    import coolmix.data
    from coolmix.reproduce.runner import _sizes

    class Built:
        def sizes(self, split):
            assert split == "train"
            return {"es": 29611, "hi": 8032, "fa": 3591, "ga": 250}

    monkeypatch.setattr(coolmix.data, "load_corpus", lambda spec, cache_dir=None: Built())
    assert _sizes(preset("mt-overfit").experiments[0]) == Built().sizes("train")
    full = preset("full-lm").experiments[1]  # exact sizes for every language: no corpus load needed
    monkeypatch.setattr(coolmix.data, "load_corpus", None)
    assert _sizes(full) == full.base["data"]["train_sizes"]
