"""The report as a PDF, printed by headless Chromium from the bundle's own index.html (nothing is fetched)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from collector.export.errors import ExportError

__all__ = ["CHROMIUM_NAMES", "find_chromium", "render_pdf"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_TIMEOUT_SECONDS = 180


def find_chromium() -> str:
    """The first Chromium on PATH; :class:`ExportError` saying how to get one when there is none."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ExportError(
        "--pdf needs headless Chromium, and none of "
        + ", ".join(CHROMIUM_NAMES)
        + " is on PATH (Debian: apt-get install chromium); export without --pdf, or print index.html yourself"
    )


def render_pdf(html: bytes, workdir: Path, chromium: str) -> bytes:
    """Print ``html`` to PDF; network access is refused so the page can only show what the bundle holds."""
    page = workdir / "report.html"
    out = workdir / "report.pdf"
    page.write_bytes(html)
    args = [
        chromium,
        "--headless",
        "--disable-gpu",
        "--no-pdf-header-footer",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        "--proxy-server=127.0.0.1:9",  # nothing reachable: a page that tried to fetch would show it missing
        f"--print-to-pdf={out}",
    ]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    args.append(page.as_uri())
    try:
        done = subprocess.run(args, capture_output=True, timeout=_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"--pdf: Chromium did not finish printing within {_TIMEOUT_SECONDS} s") from exc
    except OSError as exc:
        raise ExportError(f"--pdf: cannot run {chromium}: {exc.strerror or exc}") from exc
    if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise ExportError(f"--pdf: Chromium exited {done.returncode} without a PDF: {' | '.join(tail)}")
    data = out.read_bytes()
    if not data.startswith(b"%PDF-"):
        raise ExportError("--pdf: Chromium wrote a file that is not a PDF")
    return data
