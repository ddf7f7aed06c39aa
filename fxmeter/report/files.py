"""The Report as users handle it: the typed document plus its files (report.json, summary.md, charts).

A run's files appear together or not at all (:func:`fxmeter.base.fileio.publish`): the run
folder is built under a temporary name and renamed into place, so of two concurrent writers
of one run id exactly one wins, and a full disk leaves nothing half written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fxmeter.base import fileio
from fxmeter.errors import ReportError
from fxmeter.report.document import ReportDocument, check_output_root, check_run_id

LOG = logging.getLogger(__name__)

#: What a run folder holds that is derived from its report.json (stale once it is replaced).
DERIVED_FROM_REPORT = ("summary.md", "summary_categories.png", "summary_blocks.png", "summary_roofline.png",
                       "report.html", "verify")


@dataclass(frozen=True, repr=False)
class Report(ReportDocument):
    """One fxmeter report: the typed document (:class:`ReportDocument`) and its files."""

    def summary_markdown(self) -> str:
        from fxmeter.report.summary import render

        return render(self)

    def output_dir(self, output_root: str | Path = "tmp/profile-output") -> Path:
        return check_output_root(output_root) / check_run_id(self.run_id) / "static_analysis" / self.slug

    def files(self, *, plots: bool = False, html: bool = False) -> dict[str, bytes]:
        """report.json, summary.md and (with ``plots``) its charts, (with ``html``) report.html, as bytes."""
        return {"report.json": self.to_json(), **render_files(self, plots=plots, html=html)}

    def write(self, directory: str | Path | None = None, *, force: bool = False,
              output_root: str | Path = "tmp/profile-output", plots: bool = False, html: bool = False,
              before_commit: Callable[[list[Path]], None] | None = None) -> Path:
        """Write report.json and summary.md (and, with ``plots``, its PNG charts) into ``directory``.

        ``directory`` defaults to ``<output_root>/<run_id>/static_analysis/<slug>``.  An
        existing report there is not overwritten unless ``force``.  Charts are opt-in because
        matplotlib costs ~1 s; ``fxmeter summary REPORT`` draws them later.  ``before_commit``
        (e.g. printing the console output) runs once every file is staged; if it raises,
        nothing is written.
        """
        out = self.output_dir(output_root) if directory is None else Path(directory)
        write_files(out, self.files(plots=plots, html=html), "the report", claim="report.json", force=force,
                    whole=directory is None, drop=DERIVED_FROM_REPORT.__contains__, before_commit=before_commit)
        return out


def render_files(rep: ReportDocument, *, plots: bool = True, html: bool = False) -> dict[str, bytes]:
    """Files that go beside report.json: summary.md and (``plots``) its PNG charts.

    Without matplotlib the charts are left out with a warning; the markdown then links none.
    """
    from fxmeter.report.summary import render

    pngs: dict[str, bytes] = {}
    if plots:
        try:
            from fxmeter.report.charts import ALTS, charts_png

            pngs = charts_png(rep)
        except ImportError as e:  # pragma: no cover - matplotlib is a dependency
            LOG.warning("no charts (%s); install matplotlib", e)
            ALTS = {}
    charts = [(ALTS.get(n, n), n) for n in pngs] if pngs else []
    out = {"summary.md": render(rep, charts).encode(), **pngs}
    if html:
        from fxmeter.report.html import render_html

        out["report.html"] = render_html(rep)
    return out


def check_writable(folder: str | Path) -> None:
    """Fail early (before a trace) when ``folder`` cannot be created or written."""
    try:
        p = check_output_root(folder).absolute()
        while not p.exists():
            p = p.parent
        if not p.is_dir():
            raise ReportError(f"cannot write under {folder}: {p} is not a folder")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ReportError(f"cannot write under {folder}: {p} is not writable")
    except OSError as e:  # e.g. a name too long for the file system
        raise ReportError(f"cannot write under {folder}: {e.strerror or e}") from None


def write_files(out: Path, files: Mapping[str, bytes], what: str, *, claim: str | None = None, force: bool = False,
                whole: bool = False, drop: Callable[[str], bool] | None = None, user_path: bool = False,
                before_commit: Callable[[list[Path]], None] | None = None) -> list[Path]:
    """Write ``files`` into ``out`` all or nothing (:func:`fxmeter.base.fileio.publish`).

    ``claim`` (e.g. ``report.json``) refuses an existing output unless ``force``;
    ``whole`` marks ``out`` as fxmeter's own run folder (swapped as a whole);
    ``user_path``: the user named the destination, so an existing file needs ``force``.
    A FIFO, device or folder in the way is never replaced.  ``before_commit`` runs once
    everything is staged (an exception from it publishes nothing).
    An OS error is one ReportError line and leaves nothing of ``files`` behind.
    """
    try:
        return fileio.publish(Path(out), files, claim=claim, force=force, whole=whole, drop=drop,
                              user_path=user_path, before_commit=before_commit)
    except OSError as e:
        raise ReportError(f"cannot write {what} into {out}: {e.strerror or e}") from None


def write_html(path: str | Path, page: bytes, *, user_path: bool = True, force: bool = False,
               before_commit: Callable[[list[Path]], None] | None = None) -> Path:
    """Write an HTML ``page`` to ``path`` atomically (a temp file and a rename); a folder gets ``report.html``.

    ``user_path`` (the default): ``path`` was named by the user, so an existing file is
    replaced only with ``force``; a FIFO, device or folder is never replaced.

    Raises:
        ReportError: the file cannot be written (one line, nothing half-written).
        OutputExistsError / OutputPathError: see :func:`fxmeter.base.fileio.check_target`.
    """
    from fxmeter.report.html import HTML_NAME

    p = Path(path)
    if not str(path).strip():
        raise ReportError("empty output path: name a file, or leave -o out to write report.html beside the report")
    if p.is_dir():
        p = p / HTML_NAME
    write_files(p.parent, {p.name: page}, "the HTML report", user_path=user_path, force=force,
                before_commit=before_commit)
    return p


def load(path: str | Path) -> Report:
    """Read and validate a report (a report.json, its folder, or a run folder)."""
    return Report.load(path)  # type: ignore[no-any-return]
