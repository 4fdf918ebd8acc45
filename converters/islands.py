"""Search a small set of nodes to keep float32 so that a reduced-precision model passes.

Given the fp32 model, a precision transform (``transform(islands, path)`` writes a candidate
that keeps ``islands`` float32) and the verification gate (``passes(path) -> bool``):

1. try no islands;
2. rank the candidate nodes by sensitivity: run the fp32 model and the no-island candidate on
   small sample inputs with every intermediate exposed, and score each node by the relative
   error its own output adds over the worst error of its inputs (a node that turns finite
   inputs into inf/NaN scores infinite);
3. keep the top-k nodes float32, for k = 1, 2, 4, ... until the gate passes, then bisect k
   between the last failure and the first pass (this assumes more islands never hurt, true of
   precision islands);
4. try to drop each chosen node again, least sensitive first (minimality; bounded by the
   trial budget, and a node is dropped only when the gate still passes without it).

Deterministic (fixed samples, ranking ties broken by graph order) and bounded by
``max_trials`` transform+gate runs. If even every candidate kept float32 fails, or the budget
runs out before a passing set is found, a :class:`ConversionError` says so.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vetrina.errors import ConversionError

from .activations import TENSOR_BUDGET, Feeds, TensorReader, load, relative_error

Transform = Callable[[list[str], Path], Any]
Gate = Callable[[Path], bool]


@dataclass
class IslandSearch:
    """The nodes to keep float32, how many transform+gate trials it took, and the ranking."""

    islands: list[str]
    trials: int
    ranking: list[tuple[str, float]] = field(default_factory=list)  # (node, score), top first
    log: list[tuple[list[str], bool]] = field(default_factory=list)  # (islands, passed)


def search_islands(
    source: str | os.PathLike[str],
    transform: Transform,
    passes: Gate,
    *,
    samples: Sequence[Feeds],
    candidates: Sequence[str] | None = None,
    max_trials: int = 24,
    evaluator: str = "auto",
    range_limit: float | None = None,
    workdir: str | os.PathLike[str] | None = None,
) -> IslandSearch:
    """Find a small passing set of float32 islands for ``transform`` (see the module doc).

    ``candidates``: node names that may become islands (default: every node of the fp32
    model). ``evaluator``: how candidates are run for the ranking ("onnxruntime-fp16-emulated"
    for float16, whose rounding plain ONNX Runtime CPU skips; see :mod:`.activations`).
    ``range_limit`` (65504 for float16): nodes that read or write an fp32 value beyond it rank
    first.
    """
    if max_trials < 2:
        raise ValueError(f"max_trials must be >= 2, got {max_trials}")
    model = load(source)
    order = [n.name for n in model.graph.node]
    pool = list(order if candidates is None else candidates)
    unknown = sorted(set(pool) - set(order))
    if unknown:
        raise ConversionError(f"island candidates not in the model: {', '.join(unknown[:8])}")
    with tempfile.TemporaryDirectory(prefix="vetrina-islands-", dir=workdir) as tmp:
        trial = _Trials(transform, passes, Path(tmp), max_trials)
        if trial([]):
            return trial.result([], [])
        scores = sensitivity(
            model,
            trial.paths[frozenset()],
            samples,
            evaluator=evaluator,
            range_limit=range_limit,
        )
        index = {name: i for i, name in enumerate(order)}
        ranked = sorted(pool, key=lambda n: (-scores.get(n, 0.0), index[n]))
        ranking = [(n, scores.get(n, 0.0)) for n in ranked]
        low, high = 0, None  # the top-`low` set fails; the top-`high` set passes
        k = 1
        while high is None:
            k = min(k, len(ranked))
            if trial(ranked[:k]):
                high = k
            elif (
                k == len(ranked)
                and frozenset(ranked) in trial.errors
                and len(ranked) > 1
                and k - 1 > low
                and trial(ranked[: k - 1])
            ):
                # keeping everything is no model at all (int8 with nothing quantized); the
                # largest real candidate keeps all but the least sensitive node
                high = k - 1
            elif k == len(ranked) and frozenset(ranked) in trial.errors:
                raise ConversionError(
                    "no reduced-precision model passes the verification gate: every candidate "
                    "node would have to stay float32, and then the transform has nothing left "
                    f"to do ({trial.errors[frozenset(ranked)]})",
                    hint="keep this model in fp32 (or fp16), or loosen the gate if the measured "
                    "difference is acceptable",
                )
            elif k == len(ranked):
                raise ConversionError(
                    f"even with all {len(ranked)} candidate nodes kept float32 the model fails "
                    "the verification gate",
                    hint="the error comes from elsewhere (inputs, outputs, the gate itself); "
                    "check the gate or convert without reduced precision",
                )
            else:
                low, k = k, 2 * k
        while high - low > 1:
            mid = (low + high) // 2
            if trial(ranked[:mid]):
                high = mid
            else:
                low = mid
        chosen = ranked[:high]
        for name in reversed(ranked[:high]):
            if len(chosen) == 1 or trial.left() == 0:
                break
            rest = [n for n in chosen if n != name]
            if trial(rest):
                chosen = rest
        return trial.result([n for n in order if n in set(chosen)], ranking)


class _Trials:
    """Counted, cached transform+gate runs."""

    def __init__(self, transform: Transform, passes: Gate, folder: Path, budget: int) -> None:
        self.transform, self.passes, self.folder, self.budget = transform, passes, folder, budget
        self.seen: dict[frozenset[str], bool] = {}
        self.errors: dict[frozenset[str], str] = {}
        self.paths: dict[frozenset[str], Path] = {}
        self.log: list[tuple[list[str], bool]] = []

    def left(self) -> int:
        return self.budget - len(self.log)

    def __call__(self, islands: list[str]) -> bool:
        key = frozenset(islands)
        if key in self.seen:
            return self.seen[key]
        if self.left() <= 0:
            raise ConversionError(
                f"no passing set of float32 islands found within {self.budget} trials",
                hint="raise max_trials, or keep more op types float32 up front",
            )
        path = self.folder / f"candidate-{len(self.log) + 1}.onnx"
        try:
            self.transform(list(islands), path)
        except ConversionError as exc:  # e.g. int8 with every quantizable node excluded
            self.errors[key] = exc.message
            self.seen[key] = False
            self.log.append((sorted(islands), False))
            return False
        ok = bool(self.passes(path))
        self.seen[key] = ok
        self.paths[key] = path
        self.log.append((sorted(islands), ok))
        return ok

    def result(self, islands: list[str], ranking: list[tuple[str, float]]) -> IslandSearch:
        return IslandSearch(islands, len(self.log), ranking, list(self.log))


def sensitivity(
    reference: Any,
    candidate: Any,
    samples: Sequence[Feeds],
    *,
    evaluator: str = "auto",
    range_limit: float | None = None,
    budget: int = TENSOR_BUDGET,
) -> dict[str, float]:
    """Per node of ``reference``: the relative error its output has in ``candidate`` beyond
    the worst relative error among its inputs (inf where it turns finite into non-finite, or
    where it reads or writes a value beyond ``range_limit`` in fp32). Intermediates are
    compared a chunk at a time, ``budget`` bytes per model (see :class:`TensorReader`)."""
    from onnx import numpy_helper

    ref_model = load(reference)
    ref_reader = TensorReader(ref_model)
    cand_reader = TensorReader(candidate, evaluator=evaluator)
    beyond: set[str] = set()

    def over_limit(arrays: Sequence[np.ndarray]) -> bool:
        return range_limit is not None and any(
            a.dtype.kind == "f" and a.size and abs(a).max() > range_limit for a in arrays
        )

    if range_limit is not None:
        for t in ref_model.graph.initializer:
            if over_limit([numpy_helper.to_array(t)]):
                beyond.add(t.name)
    errors: dict[str, float | None] = {}
    for name in samples[0] if samples else ():
        arrays = [np.asarray(feeds[name]) for feeds in samples]
        errors[name] = 0.0 if arrays[0].dtype.kind == "f" else None  # both models get them
        if over_limit(arrays):
            beyond.add(name)
    for chunk in ref_reader.plan(samples, budget):
        ref_values = ref_reader.read(chunk, samples)
        cand_values = cand_reader.read(chunk, samples)
        for name, refs in ref_values.items():
            if over_limit(refs):
                beyond.add(name)
            cands = cand_values.get(name)
            if cands is None or any(a.dtype.kind != "f" for a in cands):
                errors[name] = None
                continue
            errors[name] = max(relative_error(a, b) for a, b in zip(refs, cands, strict=True))
        del ref_values, cand_values

    scores = {}
    for node in ref_model.graph.node:
        if beyond.intersection([*node.input, *node.output]):
            scores[node.name] = math.inf
            continue
        outs = [errors[o] for o in node.output if errors.get(o) is not None]
        if not outs:
            continue
        ins = [errors[i] for i in node.input if i and errors.get(i) is not None]
        out_err, in_err = max(outs), max(ins, default=0.0)
        if math.isinf(out_err):
            scores[node.name] = 0.0 if math.isinf(in_err) else math.inf
        else:
            scores[node.name] = max(0.0, out_err - in_err)
    return scores
