"""File and folder runs: collect inputs, decode, edit in batches, write outputs atomically.

A bad file is reported and skipped; it never stops the others.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import InputError, VetrinaError, failure_message
from .imageio import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    check_png_compression,
    read_image,
    write_image,
)
from .timing import StepTimes


class ImageProcessor(Protocol):
    """What a file run needs: an :class:`~vetrina.editor.Editor` or a
    :class:`~vetrina.pipeline.Pipeline`."""

    batch_size: int
    times: StepTimes

    def edit(
        self, images: Sequence[np.ndarray], *, order: str = ..., output_order: str | None = ...
    ) -> list[np.ndarray]: ...


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
OUTPUT_FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


@dataclass(frozen=True)
class FileResult:
    """Outcome for one input: the written output, or the error that skipped it."""

    source: Path
    output: Path | None = None
    error: str | None = None
    resumed: bool = False  # the output was already there (``resume``): not redone
    seconds: float | None = None  # decode to written output (with ``workers``: per file)

    @property
    def ok(self) -> bool:
        return self.error is None


def collect_inputs(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders to the image files directly inside them (sorted) and glob patterns
    (``*``, ``?``, ``[...]``; ``**`` for subfolders) that no file is named after to what they
    match (sorted; images only); files are kept as given, whatever their extension, so that
    a wrong file is reported rather than ignored (so is a pattern that matches nothing)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        text = os.fspath(raw)
        if not path.exists() and any(c in text for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            images = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS]
            found.extend(images or [path])  # no match: reported as a missing file
            continue
        if path.is_dir():
            found.extend(
                sorted(
                    p
                    for p in path.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                )
            )
        else:
            found.append(path)
    return found


def output_paths(sources: Sequence[Path], outdir: Path, fmt: str) -> list[Path]:
    """One output path per source, ``<stem>.<ext>``; clashing stems get ``-2``, ``-3``..."""
    ext = OUTPUT_FORMATS[fmt]
    taken: set[str] = set()
    result = []
    for src in sources:
        name, n = src.stem + ext, 2
        while name in taken:
            name, n = f"{src.stem}-{n}{ext}", n + 1
        taken.add(name)
        result.append(outdir / name)
    return result


def edit_files(
    editor: ImageProcessor,
    sources: Sequence[Path],
    outdir: str | os.PathLike[str],
    *,
    fmt: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    quality: int | None = None,
    metadata: dict[str, str] | None = None,
    png_compression: int | None = None,
    resume: bool = False,
    workers: int = 1,
    on_result: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    """Edit every source into ``outdir``; returns one result per source, in order.

    Output settings not given come from a pipeline's ``output`` section (``format``,
    ``quality``, ``png_compression``; ``metadata``: its provenance), else PNG, quality 92,
    OpenCV's fast PNG level, no metadata. ``metadata`` is written into PNG outputs as text;
    ``png_compression`` is their zlib level (see :func:`~vetrina.imageio.encode_image`).

    Outputs are written atomically (a temporary file renamed into place), so an output that
    exists is complete. ``resume`` skips sources whose output exists and removes temporary
    files an interrupted run left behind: rerunning an interrupted folder run produces every
    output exactly once.

    ``workers`` > 1 processes that many files at once, each on its own thread from decode to
    write (ONNX Runtime, OpenCV and the kernels release the GIL), so one file's decode and
    encode overlap another's inference; give the sessions ``cores / workers`` threads. Each
    result then says how long its file took (``seconds``).

    ``on_result`` is called once per source as soon as it is done (written, failed or found
    done by ``resume``), one call at a time, in completion order: a progress bar's hook."""
    fmt, quality, png_compression, metadata = output_settings(
        editor, fmt, quality, png_compression, metadata
    )
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"output folder {outdir} is a file", hint="give a folder with -o")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder {outdir}: {exc.strerror}") from None
    targets = output_paths(sources, outdir, fmt)
    results = _Results(on_result)
    todo = list(range(len(sources)))
    if resume:
        remove_partial_outputs(targets)
        for i in todo:
            if targets[i].is_file():
                results[i] = FileResult(sources[i], output=targets[i], resumed=True)
        todo = [i for i in todo if i not in results]
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InputError(f"workers must be a positive int, got {workers!r}")
    options: dict[str, object] = {
        "quality": quality,
        "metadata": metadata,
        "png_compression": png_compression,
    }
    if workers > 1:
        _concurrent(editor, sources, targets, todo, fmt, max_pixels, workers, options, results)
        return [results[i] for i in range(len(sources))]
    times = editor.times
    for start in range(0, len(todo), editor.batch_size):
        decoded: list[tuple[int, DecodedImage]] = []
        for i in todo[start : start + editor.batch_size]:
            try:
                with times.step("decode"):
                    decoded.append((i, read_image(sources[i], max_pixels=max_pixels)))
            except VetrinaError as exc:
                results[i] = FileResult(sources[i], error=str(exc))
        if decoded:
            for i, result in _edit_and_write(editor, decoded, targets, fmt, **options):
                results[i] = result
    return [results[i] for i in range(len(sources))]


class _Results(dict):
    """Results by source index; each new one is also passed to ``on_result`` (under a lock:
    file workers finish on their own threads)."""

    def __init__(self, on_result: Callable[[FileResult], None] | None) -> None:
        super().__init__()
        self._on_result = on_result
        self._lock = threading.Lock()

    def __setitem__(self, index: int, result: FileResult) -> None:
        with self._lock:
            super().__setitem__(index, result)
            if self._on_result is not None:
                self._on_result(result)


MAX_DEFAULT_WORKERS = 4
"""``vetrina run``'s automatic file workers stop here: each worker holds one photo's tensors."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(files: int) -> int:
    """File workers for a folder run of ``files`` files: one per core, at most
    :data:`MAX_DEFAULT_WORKERS`, at most one per file (a single photo keeps all the threads).

    On 2 cores, 2 workers of 1-thread sessions against 1 worker of 2 threads (warm, 12
    photos of 1024x683, benchmarks/workers.py): 1.24x the throughput for ``cutout``, 1.07x
    for ``catalog-cleanup``; ONNX Runtime's intra-op threads keep two cores less busy than
    two independent runs do, and one file's decode and encode hide behind another's model."""
    return max(1, min(available_cores(), MAX_DEFAULT_WORKERS, files))


def output_settings(
    editor: object,
    fmt: str | None = None,
    quality: int | None = None,
    png_compression: int | None = None,
    metadata: dict[str, str] | None = None,
) -> tuple[str, int, int | None, dict[str, str] | None]:
    """(format, quality, png_compression, metadata): what is given, else the pipeline's."""
    spec = getattr(editor, "spec", None)
    declared: dict = getattr(spec, "output", None) or {}
    fmt = fmt or declared.get("format", "png")
    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"unknown output format {fmt!r}; choose {', '.join(OUTPUT_FORMATS)}")
    if quality is None:
        quality = int(declared.get("quality", 92))
    if png_compression is None and fmt == "png":
        png_compression = declared.get("png_compression")
    check_png_compression(png_compression, fmt)
    provenance = getattr(editor, "provenance", None)
    if metadata is None and spec is not None and callable(provenance):
        metadata = provenance()
    return fmt, quality, png_compression, metadata


def _concurrent(
    editor: ImageProcessor,
    sources: Sequence[Path],
    targets: list[Path],
    todo: list[int],
    fmt: str,
    max_pixels: int,
    workers: int,
    options: dict[str, object],
    results: _Results,
) -> None:
    """Each file on a worker thread: decode, edit, encode, write; into ``results``."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> None:
        start = time.perf_counter()
        try:
            with editor.times.step("decode"):
                image = read_image(sources[i], max_pixels=max_pixels)
        except VetrinaError as exc:
            results[i] = FileResult(sources[i], error=str(exc))
            return
        ((_, result),) = _edit_and_write(editor, [(i, image)], targets, fmt, **options)
        results[i] = dataclasses.replace(result, seconds=time.perf_counter() - start)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vetrina-file")
    try:
        for _ in pool.map(one, todo):  # re-raises a worker's unexpected error
            pass
    except BaseException:  # interrupted (Ctrl-C, a crash): start no further file
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def remove_partial_outputs(targets: Sequence[Path]) -> int:
    """Delete the temporary files (``.NAME.*.tmp``, see :mod:`vetrina.atomic`) that a killed
    run left beside ``targets``; returns how many."""
    removed = 0
    for target in targets:
        for stale in target.parent.glob(f".{target.name}.*.tmp"):
            stale.unlink(missing_ok=True)
            removed += 1
    return removed


def _edit_and_write(
    editor: ImageProcessor,
    decoded: list[tuple[int, DecodedImage]],
    targets: list[Path],
    fmt: str,
    **write_options: object,
) -> list[tuple[int, FileResult]]:
    try:
        edited = editor.edit([d.pixels for _, d in decoded], order="BGR")
    except Exception as exc:  # a file's failure, whatever it is, is its own
        if len(decoded) == 1:
            i, image = decoded[0]
            return [(i, FileResult(Path(image.source), error=failure_message(exc)))]
        # One bad image must not fail its batch: retry each alone.
        return [
            r
            for item in decoded
            for r in _edit_and_write(editor, [item], targets, fmt, **write_options)
        ]
    out = []
    for (i, image), pixels in zip(decoded, edited, strict=True):
        if fmt == "jpeg" and pixels.ndim == 3 and pixels.shape[2] == 4:
            pixels = _over_white(pixels)  # JPEG has no alpha: flatten onto a white background
        try:
            with editor.times.step("encode + write"):
                write_image(targets[i], pixels, **write_options)  # type: ignore[arg-type]
            out.append((i, FileResult(Path(image.source), output=targets[i])))
        except (VetrinaError, OSError) as exc:
            out.append((i, FileResult(Path(image.source), error=f"{targets[i]}: {exc}")))
    return out


def _over_white(bgra: np.ndarray) -> np.ndarray:
    alpha = bgra[:, :, 3:4].astype(np.float32) / 255.0
    flat = bgra[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    return np.floor(flat + 0.5).astype(np.uint8)
