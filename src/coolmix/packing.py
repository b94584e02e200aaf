"""Token-level mixing: fill fixed-length rows with documents whose domain the schedule decides.

A batch is a token budget of R rows × T tokens. The schedule gives p(t) per step; the packer keeps,
per domain i, a cumulative target Z_i (every placed token at step t adds p_i(t) to every Z_i, so
at the end of step t in ``"split"`` mode Z_i = Σ_{s≤t} R·T·p_i(s)) and the realised tokens Y_i.
Whenever a row needs a new document it takes the next document of the domain with the largest
deficit Z_i − Y_i (ties: domain order). Because Σ_i (Z_i − Y_i) = 0 at every placement, the chosen
deficit is ≥ 0, so a domain is never ahead of its target by more than one of its documents:

    −ℓ_i  ≤  Z_i − Y_i  ≤  Σ_{j≠i} ℓ_j       (ℓ_i: the longest document domain i has placed)

at every token (the right bound follows from the left because the deficits sum to 0). The
schedule decides *which domain* (through the deficit), the document source decides *which
document*, and the packer only decides *where it lands*.

The partially placed document is the only thing carried between steps, so it is part of the
state (as its remaining token ids); resume is exact mid-document. Map-style domains read items
through `MapDocuments` (keyed permutation passes, as the sampler does); streams through
`coolmix.integrations.streams`. Numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from coolmix.compositions import TokenDeficit
from coolmix.errors import ConfigError
from coolmix.items import PassItems
from coolmix.mixture import Mixture, check_sizes, to_mapping
from coolmix.packing_state import (
    DOCS_KEY,
    EVENTS_KEY,
    LONGEST_KEY,
    NEXT_DOC_KEY,
    PENDING_KEY,
    REALISED_KEY,
    SCHEDULE_KEY,
    SHAPE_KEY,
    SIZES_KEY,
    STEP_KEY,
    TARGET_KEY,
    TOTAL_KEY,
    TRUNCATED_KEY,
    PackerState,
)
from coolmix.schedules import Context, Event, Schedule, schedule_from_dict
from coolmix.state_format import envelope
from coolmix.validate import MAX_INT, check_int
from coolmix.weighting import weights_array

__all__ = [
    "IGNORE_INDEX",
    "PAD_DOMAIN",
    "LongDocs",
    "MapDocuments",
    "TokenPacker",
    "as_tokens",
    "resolve_schedule",
    "token_weights",
]

PAD_DOMAIN = -1
"""Domain id (and document id) of padding tokens: never a valid domain index."""
IGNORE_INDEX = -100
"""Label of positions without a next-token target (torch ``cross_entropy``'s default ignore)."""
LongDocs = Literal["split", "truncate"]
MAX_EMPTY = 10_000  # consecutive empty documents from one domain before we call the source broken
FAST_DOMAINS = 16  # up to this many domains, a batch's deficit arithmetic runs on Python floats (faster)



def resolve_schedule(
    sizes: Mapping[str, float] | Mixture, schedule: Schedule | float | Mapping[str, Any], total_steps: int
) -> tuple[tuple[str, ...], np.ndarray, Schedule, int]:
    """Validate (sizes, schedule, total_steps) as the sampler does; sizes may be approximate floats.

    Sizes only feed the schedule's probabilities (p ∝ n^{1/τ}), so declared token counts from
    metadata are fine; realised counts are reported separately.
    """
    if isinstance(sizes, Mixture):
        sizes = sizes.sizes
    names, arr = check_sizes(sizes)
    sched = schedule if isinstance(schedule, Schedule) else schedule_from_dict(schedule)
    sched.validate(names)
    total = check_int("total_steps", total_steps, lo=1)
    sched.check(total)
    return names, arr, sched, total


def as_tokens(doc: Any) -> np.ndarray:
    """A document as a 1-D int64 array: an array/list of ids, or a mapping with ``"input_ids"``."""
    if type(doc) is np.ndarray and doc.ndim == 1 and doc.dtype == np.int64:
        return doc  # already in shape: the hot path when a source hands over token arrays
    if isinstance(doc, Mapping):
        if "input_ids" not in doc:
            raise ConfigError("document", sorted(doc)[:5], "a mapping document needs an 'input_ids' entry")
        doc = doc["input_ids"]
        if type(doc) is np.ndarray and doc.ndim == 1 and doc.dtype == np.int64:
            return doc  # {"input_ids": int64 array}: the other common hot path
    arr = np.asarray(doc)
    if arr.ndim != 1 or not (arr.size == 0 or arr.dtype.kind in "iu"):  # kind: np.integer, cheaply
        raise ConfigError("document", arr.shape, "must be a 1-D sequence of integer token ids")
    return arr.astype(np.int64, copy=False)


class TokenPacker:
    """Packs documents into (rows, seq_len) batches, choosing each document's domain by token deficit.

    ``pack(next_doc)`` builds the next batch; ``next_doc(i)`` must return domain i's next document
    (token ids). Every batch is a dict of (R, T) arrays:

    - ``input_ids`` (``pad_id`` at padding), ``labels`` (the next token of the same document in the
      same row, else `IGNORE_INDEX`), ``loss_mask`` (``labels != IGNORE_INDEX``);
    - ``domain_ids`` (`PAD_DOMAIN` = −1 at padding), ``doc_ids`` (a run-wide document serial number,
      −1 at padding: equal ids in a row form one attention segment), ``position_ids`` (0, 1, …
      restarting at each document and at each row, so always < T).

    ``long_docs="split"`` (default) streams documents end to end: a document that does not fit
    continues in the next row (and the next step); rows are never padded. ``"truncate"`` keeps each
    document inside one row: documents longer than T are cut to T (the cut tokens are counted in
    `truncated`) and a document that does not fit the rest of a row starts the next row.

    >>> pk = TokenPacker({"en": 900, "sw": 100}, 1.0, total_steps=10, rows=2, seq_len=4)
    >>> docs = {0: iter([[1, 2, 3]] * 9), 1: iter([[7, 8]] * 9)}
    >>> b = pk.pack(lambda i: next(docs[i]))
    >>> b["domain_ids"].tolist(), b["position_ids"].tolist()
    ([[0, 0, 0, 1], [1, 0, 0, 0]], [[0, 1, 2, 0], [0, 0, 1, 2]])
    """

    def __init__(
        self,
        sizes: Mapping[str, float] | Mixture,
        schedule: Schedule | float | Mapping[str, Any],
        total_steps: int,
        rows: int,
        seq_len: int,
        *,
        pad_id: int = 0,
        long_docs: LongDocs = "split",
    ) -> None:
        if isinstance(sizes, Mixture) and sizes.unit != "tokens":
            why = "the token packer mixes tokens: give Mixture(sizes, unit='tokens') (plain mappings: tokens)"
            raise ConfigError("sizes.unit", sizes.unit, why)
        self.names, self.sizes, self.schedule, self.total_steps = resolve_schedule(
            sizes, schedule, total_steps
        )
        self.rows = check_int("rows", rows, lo=1, hi=2**20)
        self.seq_len = check_int("seq_len", seq_len, lo=1, hi=2**24)
        self.pad_id = check_int("pad_id", pad_id, lo=-(2**62))
        if long_docs not in ("split", "truncate"):
            raise ConfigError("long_docs", long_docs, "must be 'split' or 'truncate'")
        self.long_docs = long_docs
        self._events: list[Event] = []
        self._reset()

    @property
    def tokens_per_batch(self) -> int:
        return self.rows * self.seq_len

    # -- state ---------------------------------------------------------------------------------

    def _reset(self) -> None:
        k = len(self.names)
        self._step = 0
        self._deficit = TokenDeficit(k)  # which domain: Z and the deficit rule (coolmix.compositions)
        self._realised = np.zeros(k)  # float array so UniMax-dynamic can read it as ctx.seen
        self._docs = np.zeros(k, dtype=np.int64)
        self._truncated = np.zeros(k, dtype=np.int64)
        self._longest = np.zeros(k, dtype=np.int64)
        self._next_doc_id = 0
        self._pending: tuple[int, np.ndarray, int, int] | None = None  # (domain, tokens, offset, doc id)
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._realised)

    @property
    def step(self) -> int:
        """The next step to pack."""
        return self._step

    def realised(self) -> dict[str, dict[str, int]]:
        """Per domain: documents started and tokens placed so far (the realised exposure)."""
        return {
            n: {"documents": int(d), "tokens": int(y)}
            for n, d, y in zip(self.names, self._docs, self._realised, strict=True)
        }

    def target(self) -> dict[str, float]:
        """Z_i: the cumulative target tokens per domain that the deficit rule tracks."""
        return to_mapping(self.names, self._deficit.target)

    @property
    def truncated(self) -> dict[str, int]:
        """Tokens cut from over-long documents per domain (``long_docs="truncate"`` only)."""
        return {n: int(c) for n, c in zip(self.names, self._truncated, strict=True)}

    @property
    def longest(self) -> dict[str, int]:
        """ℓ_i: the longest document (as placed, after truncation) per domain: the bound's unit."""
        return {n: int(c) for n, c in zip(self.names, self._longest, strict=True)}

    def record_event(self, name: str, step: int | None = None, **info: Any) -> Event:
        """Record a schedule event (e.g. an adaptive ``"cooldown"``) from ``step`` (default: next)."""
        step = self._step if step is None else check_int("event.step", step, lo=0, hi=MAX_INT)
        if step < self._step:
            raise ConfigError("event.step", step, f"batches up to {self._step - 1} were already packed")
        event = Event(step, name, info)
        self._events.append(event)
        self._ctx = Context(self.names, self.sizes, self.total_steps, self._events, self._realised)
        return event

    def state_dict(self) -> dict[str, Any]:
        """JSON-able (`coolmix.state_format`, kind "packer"): counters per domain, the targets, the
        events and the partly placed document."""
        pending = None
        if self._pending is not None:
            d, toks, off, doc_id = self._pending
            pending = {"domain": self.names[d], "tokens": toks[off:].tolist(), "doc_id": doc_id}
        return envelope("packer", self.names, {
            SHAPE_KEY: [self.rows, self.seq_len, self.long_docs],
            STEP_KEY: self._step,
            TARGET_KEY: to_mapping(self.names, self._deficit.target),
            REALISED_KEY: {n: int(y) for n, y in zip(self.names, self._realised, strict=True)},
            DOCS_KEY: {n: int(c) for n, c in zip(self.names, self._docs, strict=True)},
            TRUNCATED_KEY: self.truncated,
            LONGEST_KEY: self.longest,
            NEXT_DOC_KEY: self._next_doc_id,
            PENDING_KEY: pending,
            EVENTS_KEY: [e.to_dict() for e in self._events],
            TOTAL_KEY: self.total_steps,
            SCHEDULE_KEY: self.schedule.to_dict(),
            SIZES_KEY: to_mapping(self.names, self.sizes),
        })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict` output; the next `pack` continues exactly where that packer stopped.

        Every field is checked before anything changes (one-line `ConfigError` naming
        ``packer_state.<field>``, the packer untouched): the run (shape, total_steps, schedule,
        sizes: a deliberate change is a new packer), counters (ints in [0, 2**62]), Σ realised =
        step·R·T (≤ with ``"truncate"``), targets finite with Σ (Z − Y) ≈ 0 and each deficit
        within the bound −ℓ_i ≤ Z_i − Y_i ≤ Σ_{j≠i} ℓ_j, the pending document and the events.
        """
        parsed = PackerState(self, state).parse()
        self._events[:] = parsed.events
        self._reset()
        self._step, self._next_doc_id, self._pending = parsed.step, parsed.next_doc, parsed.pending
        self._deficit.target[:], self._realised[:] = parsed.target, parsed.realised
        self._docs[:], self._truncated[:], self._longest[:] = parsed.docs, parsed.truncated, parsed.longest

    # -- packing -------------------------------------------------------------------------------

    def probs_array(self, step: int) -> np.ndarray:
        """p(step) aligned with ``names`` (exposure-driven schedules read the realised tokens)."""
        return self.schedule.probs(int(step), self._ctx)

    def _next(self, p: np.ndarray, next_doc: Callable[[int], Any], all_on: bool, first: int = -1) -> tuple:
        """The next non-empty document, from the domain the deficit rule picks (``first``: already chosen)."""
        empty = 0
        while True:
            # an empty document changes no deficit
            d = first if first >= 0 else self._deficit.choose(p, self._realised, all_on)
            toks = as_tokens(next_doc(d))
            self._docs[d] += 1
            if toks.size:
                break
            empty += 1
            if empty >= MAX_EMPTY:
                raise ConfigError(
                    f"documents.{self.names[d]}", empty, "the source yields only empty documents"
                )
        if self.long_docs == "truncate" and toks.size > self.seq_len:
            self._truncated[d] += toks.size - self.seq_len
            toks = toks[: self.seq_len]
        if toks.size > self._longest[d]:
            self._longest[d] = toks.size
        self._pending = (d, toks, 0, self._next_doc_id)
        self._next_doc_id += 1
        return self._pending

    def pack(self, next_doc: Callable[[int], Any], step: int | None = None) -> dict[str, np.ndarray]:
        """The next batch; ``step`` is the schedule step it belongs to (default: `step`).

        Lanes that interleave with others (DataLoader workers) pass their global step here.
        """
        sched_step = self._step if step is None else check_int("step", step, lo=0, hi=self.total_steps - 1)
        if sched_step >= self.total_steps:
            why = f"all total_steps={self.total_steps} batches are packed (a packer serves one run)"
            raise ConfigError("step", sched_step, why)
        p = self.probs_array(sched_step)
        R, T = self.rows, self.seq_len
        size, truncate, all_on = R * T, self.long_docs == "truncate", bool(p.min() > 0)
        target, realised = self._deficit.target, self._realised
        # One segment per placement (or per padded row end): token views, domain, document id,
        # length and start offset, turned into the (R, T) arrays by a few numpy calls at the end.
        # Z is still updated per placement, in the same float order, so the deficits (and with
        # them every choice and the saved state) are exactly those of a token-by-token fill.
        fast = all_on and len(p) <= FAST_DOMAINS
        if fast:  # Python floats: the same IEEE operations in the same order, without numpy's per-call cost
            target, realised, p_list = target.tolist(), realised.tolist(), p.tolist()
            choose, place = TokenDeficit.choose_lists, TokenDeficit.place_lists
        parts: list[np.ndarray] = []
        seg_dom: list[int] = []
        seg_doc: list[int] = []
        seg_len: list[int] = []
        seg_start: list[int] = []
        pad = None
        c = 0
        pending = self._pending
        try:
            while c < size:
                if pending is None:
                    if fast:  # argmax of Z − Y (first maximum, as numpy's) on the lists
                        pending = self._next(p, next_doc, all_on, choose(target, realised))
                    else:
                        pending = self._next(p, next_doc, all_on)
                d, toks, off, doc_id = pending
                room = T - c % T
                left = toks.size - off
                if truncate and left > room:  # pad the rest of this row; the document starts the next one
                    if pad is None:
                        pad = np.full(T, self.pad_id, dtype=np.int64)
                    parts.append(pad[:room])
                    seg_dom.append(PAD_DOMAIN)
                    seg_doc.append(PAD_DOMAIN)
                    seg_len.append(room)
                    seg_start.append(-1)  # marks padding: its positions are 0
                    c += room
                    continue
                n = left if left < room else room
                parts.append(toks[off : off + n])
                seg_dom.append(d)
                seg_doc.append(doc_id)
                seg_len.append(n)
                seg_start.append(c)
                realised[d] += n
                if fast:
                    place(target, p_list, n)
                else:
                    self._deficit.place(p, n)
                c += n
                pending = None if n == left else (d, toks, off + n, doc_id)
                self._pending = pending
        finally:
            if fast:  # also if a source fails mid-batch, as the array path would have them
                self._deficit.target[:], self._realised[:] = target, realised
        self._step += 1
        lens = np.array(seg_len, dtype=np.int64)
        ids = np.concatenate(parts)
        dom = np.repeat(np.array(seg_dom, dtype=np.int64), lens)
        if ids.min() < 0:  # one reduction a batch, not one a document (pad_id may be negative)
            _check_ids(ids, dom, self.names)
        if pending is not None and pending[1][pending[2] :].min() < 0:  # the rest, carried over
            d = pending[0]
            _check_ids(pending[1][pending[2] :], np.full(pending[1].size - pending[2], d), self.names)
        doc = np.repeat(np.array(seg_doc, dtype=np.int64), lens)
        pos = np.arange(size, dtype=np.int64) - np.repeat(np.array(seg_start, dtype=np.int64), lens)
        if pad is not None:
            pos[dom == PAD_DOMAIN] = 0
        return _finish(ids.reshape(R, T), dom.reshape(R, T), doc.reshape(R, T), pos.reshape(R, T))


def _check_ids(ids: np.ndarray, dom: np.ndarray, names: tuple[str, ...]) -> None:
    """Document tokens must be ids in [0, 2**63): -100 would silently mask its label, and ids >=
    2**63 arrive wrapped negative. The batch is refused (resume from the last saved state)."""
    bad = np.flatnonzero((ids < 0) & (dom >= 0))
    if bad.size:
        j = int(bad[0])
        why = "token ids must be in [0, 2**63) (a negative id, or one that wrapped past 2**63 - 1)"
        raise ConfigError(f"documents.{names[int(dom[j])]}", int(ids[j]), why)


def _finish(ids: np.ndarray, dom: np.ndarray, doc: np.ndarray, pos: np.ndarray) -> dict[str, np.ndarray]:
    """Add next-token ``labels`` (same document, same row) and the ``loss_mask`` they imply."""
    labels = np.full_like(ids, IGNORE_INDEX)
    same = (doc[:, 1:] == doc[:, :-1]) & (doc[:, :-1] >= 0)
    labels[:, :-1] = np.where(same, ids[:, 1:], IGNORE_INDEX)
    return {
        "input_ids": ids,
        "labels": labels,
        "loss_mask": labels != IGNORE_INDEX,
        "domain_ids": dom,
        "doc_ids": doc,
        "position_ids": pos,
    }


class MapDocuments:
    """Map-style per-domain datasets as a packer's document source: ``docs(i)`` → domain i's next document.

    Draw j of domain d reads item ``permute(j mod n_d, n_d, key(seed, d, pass = j div n_d))``: a fresh
    keyed permutation per pass, the sampler's without-replacement scheme, so after k passes every
    item has been read k times. State: one cursor per domain.

    >>> md = MapDocuments({"a": [[1], [2], [3]], "b": [[9]]}, seed=0)
    >>> sorted(int(md(0)[0]) for _ in range(3)), md.cursors
    ([1, 2, 3], {'a': 3, 'b': 0})
    """

    def __init__(
        self,
        datasets: Mapping[str, Sequence[Any]],
        seed: int = 0,
        tokens: Callable[[Any], Any] = as_tokens,
    ) -> None:
        if not isinstance(datasets, Mapping) or not datasets:
            raise ConfigError("datasets", datasets, "must be a non-empty mapping of domain name -> dataset")
        self.names = tuple(datasets)
        self.datasets = [datasets[n] for n in self.names]
        self.lengths = [len(ds) for ds in self.datasets]
        for n, size in zip(self.names, self.lengths, strict=True):
            if size == 0:
                raise ConfigError(f"datasets.{n}", 0, "empty dataset: nothing to read")
        self.seed = check_int("seed", seed, lo=0)
        self.tokens = tokens
        self._passes = PassItems(self.names, self.lengths, self.seed)
        self._cursors = [0] * len(self.names)

    @property
    def cursors(self) -> dict[str, int]:
        return dict(zip(self.names, self._cursors, strict=True))

    def item(self, domain: int, draw: int) -> int:
        """Item index of draw number ``draw`` of ``domain`` (`coolmix.items.PassItems`, as the sampler)."""
        return self._passes.item(domain, draw)

    def __call__(self, domain: int) -> np.ndarray:
        j = self._cursors[domain]
        self._cursors[domain] = j + 1
        return self.tokens(self.datasets[domain][self.item(domain, j)])

    def state_dict(self) -> dict[str, Any]:
        return {"cursors": self.cursors, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        seed = state.get("seed") if isinstance(state, Mapping) else state
        if seed != self.seed:
            raise ConfigError("documents_state.seed", seed, f"this source has seed {self.seed}")
        try:
            self._cursors = [int(state["cursors"][n]) for n in self.names]
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("documents_state", type(e).__name__, f"corrupt state: {e}") from None


def token_weights(
    domain_ids: Any,
    weights: Mapping[str, float] | Sequence[float] | np.ndarray,
    names: Sequence[str] | None = None,
) -> Any:
    """Per-token loss weights w[domain_ids], 0 where the id is `PAD_DOMAIN` (or any negative id).

    ``weights`` is aligned with the domain ids, or a name → weight mapping with ``names`` giving
    the order. Works on numpy arrays and torch tensors (the result follows ``domain_ids``' type and
    device, as float64). The per-token scalarised loss is Σ w·ℓ·mask / Σ mask (unbiased, as
    `weighted_loss`'s ``mean``).

    >>> token_weights(np.array([[0, 1, -1]]), [2.0, 0.5]).tolist()
    [[2.0, 0.5, 0.0]]
    """
    if isinstance(weights, Mapping):
        if names is None:
            raise ConfigError("names", None, "a name -> weight mapping needs the domain order (names=...)")
        w = weights_array(weights, names)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1:
            raise ConfigError("weights", w.shape, "must be one weight per domain")
    if hasattr(domain_ids, "new_tensor"):  # torch, without importing it
        wt = domain_ids.double().new_tensor(w)
        valid = domain_ids >= 0
        return wt[domain_ids.clamp(min=0)] * valid
    ids = np.asarray(domain_ids)
    if ids.size and ids.max() >= len(w):
        raise ConfigError("domain_ids", int(ids.max()), f"only {len(w)} weights given")
    valid = ids >= 0
    return np.where(valid, w[np.where(valid, ids, 0)], 0.0)
