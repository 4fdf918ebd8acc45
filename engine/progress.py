"""The progress bar of a folder run (``vetrina run``): files done of all, files per second,
failures so far. tqdm draws it on stderr, only when stderr is a terminal (logs and pipes get
the summary alone) unless forced on or off."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from .files import FileResult


class FileProgress:
    """Pass as ``edit_files(on_result=...)``; ``close()`` when the run ends.

    ``enabled``: None draws the bar on a terminal only, True always, False never."""

    def __init__(
        self, total: int, *, enabled: bool | None = None, stream: TextIO | None = None
    ) -> None:
        from tqdm import tqdm

        self.failed = 0
        self.bar: Any = tqdm(
            total=total,
            desc="files",
            unit="file",
            file=stream or sys.stderr,
            disable=None if enabled is None else not enabled,
            dynamic_ncols=True,
        )

    def __call__(self, result: FileResult) -> None:
        if not result.ok:
            self.failed += 1
            self.bar.set_postfix(failed=self.failed, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
