"""Task glue: exact token rows for LM and MT, batches trimmed to the longest row, decoding cleanup.

A stand-in tokenizer maps each character to one id (a=10, b=11, ...), so every expected array
can be written out by hand.
"""

import numpy as np
import torch

from coolmix.train.config import TaskConfig
from coolmix.train.tasks import LMTask, MTTask, _pack, _strip

PAD, BOS, EOS = 0, 1, 2
TAGS = {"en": 5, "sw": 6, "es": 7}
CPU = torch.device("cpu")


class CharTok:
    pad_id, bos_id, eos_id = PAD, BOS, EOS

    def lang_id(self, lang):
        return TAGS[lang]

    def encode_batch(self, texts):
        return [[10 + ord(c) - ord("a") for c in t] for t in texts]


def test_pack_pads_and_truncates():
    arr, lens = _pack([[1, 2, 3], [4], [5, 6, 7, 8, 9]], width=4, pad=0)
    assert arr.tolist() == [[1, 2, 3, 0], [4, 0, 0, 0], [5, 6, 7, 8]]
    assert lens.tolist() == [3, 1, 4]


def test_lm_rows_are_tag_text_eos_and_batches_trim_to_longest():
    task = LMTask(CharTok(), TaskConfig(seq_len=5))
    data = task.encode({"en": ["ab", "abcdefg"], "sw": ["c"]})
    assert data.offsets.tolist() == [0, 2, 3] and data.sizes() == {"en": 2, "sw": 1}
    assert data.tgt.tolist() == [
        [5, 10, 11, EOS, PAD, PAD],
        [5, 10, 11, 12, 13, 14],  # truncated to seq_len + 1 = 6 tokens: no eos
        [6, 12, EOS, PAD, PAD, PAD],
    ]
    b = task.batch(data, np.array([1, 0]), np.array([0, 0]), CPU)  # sw[0], en[0]: longest row has 4
    (tokens,) = b.inputs
    assert tokens.tolist() == [[6, 12, EOS], [5, 10, 11]]
    assert b.targets.tolist() == [[12, EOS, PAD], [10, 11, EOS]]  # the tag is never a target
    assert b.domains.tolist() == [1, 0]


def test_mt_source_ends_in_eos_and_decoder_starts_with_target_tag():
    task = MTTask(CharTok(), TaskConfig(src_len=4, tgt_len=3))
    data = task.encode({"es": [("ab", "c"), ("abcdef", "abcd")]})
    assert data.src.tolist() == [[10, 11, EOS, PAD], [10, 11, 12, EOS]]  # truncated source keeps eos
    assert data.tgt.tolist() == [[7, 12, EOS, PAD], [7, 10, 11, 12]]
    assert data.refs == {"es": ["c", "abcd"]}
    b = task.batch(data, np.array([0]), np.array([0]), CPU)
    src, tgt_in, mask = b.inputs
    assert src.tolist() == [[10, 11, EOS]] and mask.tolist() == [[False, False, False]]
    assert tgt_in.tolist() == [[7, 12]] and b.targets.tolist() == [[12, EOS]]


def test_strip_drops_tag_stops_at_eos():
    assert _strip([7, 10, 11, EOS, 12, PAD], tag=7, eos=EOS, pad=PAD) == [10, 11]
    assert _strip([10, PAD, 11], tag=7, eos=EOS, pad=PAD) == [10, 11]
