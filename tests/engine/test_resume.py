"""An interrupted folder run, restarted with resume, writes every output exactly once and
leaves nothing half-written."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vetrina.cli import main
from vetrina.editor import Editor
from vetrina.files import collect_inputs, edit_files
from vetrina.imageio import read_image
from vetrina.model import Model


class Interrupted(BaseException):
    """Like KeyboardInterrupt: it stops the run (an Exception would fail only its files)."""


class FailsAfter:
    """An editor that is interrupted on its ``n``-th batch."""

    def __init__(self, editor: Editor, n: int) -> None:
        self.editor, self.n, self.calls = editor, n, 0
        self.batch_size, self.times = editor.batch_size, editor.times

    def edit(self, images, **kw):
        self.calls += 1
        if self.calls == self.n:
            raise Interrupted
        return self.editor.edit(images, **kw)


@pytest.fixture()
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        cv2.imwrite(str(src / f"p{i}.png"), rng.integers(0, 256, (20, 28, 3), dtype=np.uint8))
    return src


def test_resume_after_an_interruption_writes_each_output_once(small_model, folder, tmp_path):
    editor = Editor(Model.open(small_model), batch_size=2)
    sources, out = collect_inputs([folder]), tmp_path / "out"
    with pytest.raises(Interrupted):
        edit_files(FailsAfter(editor, 3), sources, out)  # dies on the third batch
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["p0.png", "p1.png", "p2.png", "p3.png"]
    (out / ".p4.png.abc123.tmp").write_bytes(b"half an image")  # left by a killed writer
    counter = FailsAfter(editor, 0)
    results = edit_files(counter, sources, out, resume=True)
    assert [r.resumed for r in results] == [True] * 4 + [False] * 3
    assert all(r.ok for r in results) and counter.calls == 2  # p4..p6 in batches of 2
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.png" for i in range(7)]
    for name, data in first.items():
        assert (out / name).read_bytes() == data  # not redone
    for i in range(7):
        expected = editor.edit([read_image(folder / f"p{i}.png").pixels], order="BGR")[0]
        np.testing.assert_array_equal(read_image(out / f"p{i}.png").pixels, expected)


def test_cli_resume(small_model, folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(small_model), str(folder), "-o", str(out)]) == 0
    capsys.readouterr()
    (out / "p2.png").unlink()
    assert main(["run", str(small_model), str(folder), "-o", str(out), "--resume"]) == 0
    text = capsys.readouterr().out
    assert "6 already done (--resume)" in text and "1 written to" in text


def test_workers_write_the_same_files_and_a_bad_file_fails_alone(small_model, folder, tmp_path):
    editor = Editor(Model.open(small_model, threads=1), batch_size=1)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    sources = collect_inputs([folder])
    serial = edit_files(editor, sources, tmp_path / "serial")
    parallel = edit_files(editor, sources, tmp_path / "parallel", workers=3)
    assert [r.source for r in parallel] == sources  # results in input order
    assert [r.ok for r in parallel] == [r.ok for r in serial]
    assert sum(not r.ok for r in parallel) == 1 and "broken.png" in next(
        r.error for r in parallel if not r.ok
    )
    for r in parallel:
        if r.ok:
            assert r.seconds is not None and r.seconds > 0
            assert r.output.read_bytes() == (tmp_path / "serial" / r.output.name).read_bytes()
    with pytest.raises(Exception, match="workers must be a positive int"):
        edit_files(editor, sources, tmp_path / "x", workers=0)


def test_workers_resume_after_an_interruption(small_model, folder, tmp_path):
    editor = Editor(Model.open(small_model, threads=1), batch_size=1)
    sources, out = collect_inputs([folder]), tmp_path / "out"
    with pytest.raises(Interrupted):
        edit_files(FailsAfter(editor, 4), sources, out, workers=2)
    done = {p.name for p in out.iterdir()}
    assert not any(name.endswith(".tmp") for name in done)  # nothing half-written
    results = edit_files(editor, sources, out, resume=True, workers=2)
    assert sum(r.resumed for r in results) == len(done) and all(r.ok for r in results)
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.png" for i in range(7)]


def test_umask_is_read_without_being_changed(tmp_path):
    import os

    from vetrina.atomic import atomic_write_bytes, current_umask

    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        atomic_write_bytes(tmp_path / "f.bin", b"x")
        assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o640
        assert os.umask(0o027) == 0o027  # still what it was
    finally:
        os.umask(old)


@pytest.mark.parametrize("workers", [1, 3])
def test_on_result_sees_every_file_once_as_it_finishes(small_model, folder, tmp_path, workers):
    import io

    from vetrina.progress import FileProgress

    editor = Editor(Model.open(small_model, threads=1), batch_size=2)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    sources, out = collect_inputs([folder]), tmp_path / "out"
    good = [s for s in sources if s.name != "broken.png"]
    edit_files(editor, good[:3], out)  # three done before: found by resume
    seen, inside, overlaps = [], [0], []

    def hook(result):
        inside[0] += 1
        overlaps.append(inside[0])
        seen.append(result)
        inside[0] -= 1

    results = edit_files(editor, sources, out, resume=True, workers=workers, on_result=hook)
    assert sorted(r.source for r in seen) == sorted(sources)  # each once
    assert max(overlaps) == 1  # one call at a time
    assert sum(r.resumed for r in seen) == 3 and sum(not r.ok for r in seen) == 1
    assert {id(r) for r in seen} == {id(r) for r in results}
    # the CLI's bar, forced on into a buffer: counts files and failures
    buffer = io.StringIO()
    bar = FileProgress(len(sources), enabled=True, stream=buffer)
    edit_files(editor, sources, tmp_path / "again", workers=workers, on_result=bar)
    bar.close()
    assert bar.bar.n == len(sources) and bar.failed == 1
    assert f"{len(sources)}/{len(sources)}" in buffer.getvalue()


def test_cli_progress_bar_is_off_without_a_terminal_and_on_request(
    small_model, folder, tmp_path, capsys
):
    assert main(["run", str(small_model), str(folder), "-o", str(tmp_path / "a")]) == 0
    assert "file/s" not in capsys.readouterr().err  # captured stderr is no terminal
    args = ["run", str(small_model), str(folder), "-o", str(tmp_path / "b"), "--no-progress"]
    assert main(args) == 0
    assert "7 written" in capsys.readouterr().out


def test_default_workers_one_per_core_at_most_four_and_one_per_file(monkeypatch):
    import os

    from vetrina import files

    for cores, count, want in ((2, 12, 2), (16, 100, 4), (8, 1, 1), (1, 5, 1), (16, 3, 3)):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _, c=cores: set(range(c)))
        assert files.default_workers(count) == want
    assert files.available_cores() == 16  # the last affinity mask set above


def test_cli_workers_auto_by_default_and_checked(small_model, folder, tmp_path, capsys):
    out = tmp_path / "auto"
    assert main(["run", str(small_model), str(folder), "-o", str(out)]) == 0
    assert len(list(out.iterdir())) == 7
    for bad in ("0", "many"):
        with pytest.raises(SystemExit):
            main(["run", str(small_model), str(folder), "-o", str(out), "--workers", bad])
    assert "--workers" in capsys.readouterr().err
