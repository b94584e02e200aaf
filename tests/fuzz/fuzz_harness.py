"""Outcome classifier of the hostile fuzz suite: every input gives a sound result or one ConfigError.

Each fuzz case is run through `run_cli` (the ``coolmix`` entry point, in-process) or `run_api`
(a public function) and sorted into one of five outcomes:

- ``ok``: a result that passed its soundness check (finite; probabilities sum to 1; ...);
- ``error``: a one-line `ConfigError` (exit 2 with exactly one stderr line for the CLI);
- ``traceback``: any other exception, a multi-line error, or an exit status other than 0/2;
- ``silent``: a result returned without complaint that is non-finite or wrong;
- ``misnamed``: a one-line error that does not name the field the user wrote;
- ``hang``: an API call still running after `HANG_SECONDS` (interrupted by a timer).

In tests (``STRICT = True``) the last three raise AssertionError, so hypothesis shrinks to a
minimal failing input. ``scripts/fuzz_report.py`` sets ``STRICT = False`` and prints the tally
instead, so the same cases measure the code before and after a fix.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from coolmix.errors import ConfigError

STRICT = True
"""Raise on a bad outcome (tests); ``False``: only count it (the standalone report)."""

BAD = ("traceback", "silent", "misnamed", "hang")
HANG_SECONDS = 10.0
"""An API call running longer than this is a hang (a seek that never returns); 0 disables the timer."""
TALLY: Counter[str] = Counter()
"""Outcome -> count, per run of the process; ``TALLY["cases"]`` counts every case."""
BY_TARGET: dict[str, Counter[str]] = {}
EXAMPLES: dict[str, list[str]] = {}
"""Outcome -> the first few offending cases (for the report)."""

WARNING_PREFIX = "coolmix: warning: "
"""stderr lines that are warnings (e.g. an override that dropped keys), not the one error line."""

_NAN = re.compile(r"(?<![\w.])[-+]?nan(?![\w])", re.IGNORECASE)


class WouldTrain(Exception):
    """Raised by the stubs that stand in for training: the input was accepted as valid."""


class Hang(BaseException):
    """Raised by the timer inside a call that ran past `HANG_SECONDS` (BaseException: not swallowed)."""


@contextlib.contextmanager
def _deadline(seconds: float) -> Any:
    """Interrupt the body with `Hang` after ``seconds`` (main thread, POSIX; else no timer)."""
    main = threading.current_thread() is threading.main_thread()
    usable = seconds > 0 and hasattr(signal, "setitimer") and main
    if not usable:
        yield
        return

    def fire(_signum: int, _frame: Any) -> None:
        raise Hang(f"still running after {seconds:g} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def record(target: str, outcome: str, detail: str = "") -> None:
    """Count one case; in strict mode a bad outcome fails the test with ``detail``."""
    TALLY["cases"] += 1
    TALLY[outcome] += 1
    BY_TARGET.setdefault(target, Counter())[outcome] += 1
    if outcome in BAD:
        seen = EXAMPLES.setdefault(outcome, [])
        if len(seen) < 40:
            seen.append(f"[{target}] {detail}"[:400])
        if STRICT:
            raise AssertionError(f"{outcome} in {target}: {detail}")


def _show(target: str, outcome: str, text: str) -> None:
    """With ``COOLMIX_FUZZ_SHOW=1``, print every case's outcome (to see what the errors say)."""
    if os.environ.get("COOLMIX_FUZZ_SHOW"):
        print(f"[{target}] {outcome}: {text[:300]}", file=sys.__stderr__)


def run_cli(
    target: str,
    argv: Sequence[str],
    check: Callable[[str], str | None] | None = None,
    expect_field: str | None = None,
) -> tuple[int | None, str, str]:
    """Run ``coolmix argv`` in-process and classify it; returns (exit status, stdout, stderr).

    ``check(stdout)`` may return a reason the successful output is wrong (``silent``);
    ``expect_field`` is a word the one-line error must contain (else ``misnamed``).
    """
    from coolmix.cli.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(list(argv))
    except WouldTrain as e:  # accepted as valid; the stub may know it should not have been
        record(target, "silent" if e.args else "ok", f"{list(argv)!r}: {e.args[0] if e.args else ''}")
        return 0, out.getvalue(), err.getvalue()
    except Exception as e:  # a traceback reached the user
        record(target, "traceback", f"{list(argv)!r}: {type(e).__name__}: {str(e)[:160]}")
        return None, out.getvalue(), err.getvalue()
    stdout, stderr = out.getvalue(), err.getvalue()
    _show(target, f"exit {rc}", f"{list(argv)[:1] + list(argv)[3:]} -> {stderr.strip()}")
    lines = [x for x in stderr.strip().splitlines() if not x.startswith(WARNING_PREFIX)]
    if rc == 2:
        if len(lines) != 1 or "Traceback" in stderr:
            record(target, "traceback", f"{list(argv)!r}: exit 2 with {len(lines)} lines: {stderr[:200]!r}")
        elif expect_field is not None and not re.search(rf"\b{re.escape(expect_field)}\b", lines[0]):
            record(target, "misnamed", f"{list(argv)!r}: expected {expect_field!r} in {lines[0]!r}")
        else:
            record(target, "error")
        return rc, stdout, stderr
    if rc != 0:
        record(target, "traceback", f"{list(argv)!r}: exit {rc}: {stderr[:200]!r}")
        return rc, stdout, stderr
    why = _NAN.search(stdout) and "NaN in the output"
    why = why or (check(stdout) if check is not None else None)
    record(target, "silent" if why else "ok", f"{list(argv)!r}: {why}")
    return rc, stdout, stderr


def run_api(
    name: str,
    fn: Callable[..., Any],
    *args: Any,
    check: Callable[[Any], str | None] | None = None,
    expect_field: str | None = None,
    finite: bool = True,
    **kwargs: Any,
) -> Any:
    """Call ``fn(*args, **kwargs)``; a ConfigError is fine, anything else must pass ``check``.

    Returns the result, or None when it raised. Every returned number must be finite unless
    ``finite=False`` (constructors: a schedule may hold τ = ∞, which means uniform).
    """
    try:
        with _deadline(HANG_SECONDS):
            result = fn(*args, **kwargs)
    except Hang as e:
        record(name, "hang", f"{_brief(args, kwargs)}: {e}")
        return None
    except ConfigError as e:
        text = str(e)
        if "\n" in text:
            record(name, "traceback", f"multi-line ConfigError: {text[:200]!r}")
        elif expect_field is not None and not re.search(rf"\b{re.escape(expect_field)}\b", text):
            record(name, "misnamed", f"expected {expect_field!r} in {text!r}")
        else:
            record(name, "error")
        return None
    except Exception as e:
        record(name, "traceback", f"{_brief(args, kwargs)}: {type(e).__name__}: {str(e)[:160]}")
        return None
    why = None if not finite or all_finite(result) else "non-finite result"
    why = why or (check(result) if check is not None else None)
    record(name, "silent" if why else "ok", f"{_brief(args, kwargs)} -> {_short(result)}: {why}")
    return result


def all_finite(x: Any) -> bool:
    """True when every number inside ``x`` (nested mappings, sequences, arrays, attributes) is finite."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return True
    if isinstance(x, (int, np.integer)):
        return True
    if isinstance(x, (float, np.floating)):
        return math.isfinite(float(x))
    if isinstance(x, np.ndarray):
        return x.dtype.kind not in "fc" or bool(np.isfinite(x).all())
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor
        return all_finite(x.detach().cpu().numpy())
    if isinstance(x, Mapping):
        return all(all_finite(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(all_finite(v) for v in x)
    if hasattr(x, "__dataclass_fields__"):
        return all(all_finite(getattr(x, f)) for f in x.__dataclass_fields__)
    return True


def check_probs(p: Any) -> str | None:
    """A normalised distribution: non-negative entries summing to 1 (to 1e-9)."""
    values = np.array(list(p.values()) if isinstance(p, Mapping) else p, dtype=np.float64)
    if values.size == 0:
        return "empty distribution"
    if (values < 0).any():
        return "negative probability"
    if not math.isclose(float(values.sum()), 1.0, rel_tol=0, abs_tol=1e-9):
        return f"sums to {float(values.sum())!r}"
    return None


def check_nonneg(w: Any) -> str | None:
    """Weights: non-negative (finiteness is checked for every result)."""
    values = np.array(list(w.values()) if isinstance(w, Mapping) else w, dtype=np.float64)
    return "negative weight" if (values < 0).any() else None


def summary() -> str:
    """``cases / tracebacks / silent non-finite / misnamed``, then per target and examples."""
    t = TALLY
    lines = [
        f"{t['cases']} cases / {t['traceback']} tracebacks / {t['silent']} silent non-finite or wrong / "
        f"{t['misnamed']} misnamed fields / {t['hang']} hangs  (ok {t['ok']}, one-line errors {t['error']})"
    ]
    for name, c in sorted(BY_TARGET.items()):
        lines.append(
            f"  {name:<24} {sum(c.values()):>5} cases  {c['traceback']:>4} tb  {c['silent']:>4} silent  "
            f"{c['misnamed']:>3} misnamed  {c['hang']:>3} hang  ({c['ok']} ok, {c['error']} errors)"
        )
    for outcome, seen in EXAMPLES.items():
        lines.append(f"first {outcome} cases:")
        lines.extend(f"  - {s}" for s in seen[:12])
    return "\n".join(lines)


def _brief(args: tuple, kwargs: dict) -> str:
    return _short((args, kwargs), 200)


def _short(x: Any, limit: int = 120) -> str:
    text = repr(x).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- registry: each fuzzer is one strategy and one body, run by the tests and by the report ----------

FUZZERS: dict[str, tuple[Any, Callable[[Any], None], int]] = {}
"""name -> (hypothesis strategy, body(case), examples in the slow job)."""


def fuzzer(name: str, strategy: Any, fast: int, slow: int) -> Callable[[Callable[[Any], None]], tuple]:
    """Register ``body`` and return (fast test, slow test) running it on ``fast``/``slow`` examples."""
    import pytest

    def deco(body: Callable[[Any], None]) -> tuple:
        FUZZERS[name] = (strategy, body, slow)

        def test_fast() -> None:
            run_fuzzer(name, fast)

        @pytest.mark.slow
        def test_slow() -> None:
            run_fuzzer(name, slow)

        return test_fast, test_slow

    return deco


def run_fuzzer(name: str, examples: int) -> None:
    """Run fuzzer ``name`` on ``examples`` derandomised hypothesis examples."""
    from hypothesis import HealthCheck, given, settings

    strategy, body, _ = FUZZERS[name]
    test = settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(strategy)(body))
    test()
