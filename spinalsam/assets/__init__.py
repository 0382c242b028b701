"""Front-end assets (CSS, JS, HTML templates) kept as real files, read once at import.

Keeping them out of Python strings lets editors and linters see them as what they are, and
lets `launch.py` (process settings) and `ui.py` (layout) only reference them.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["APP_CSS", "SHOW_IMAGE_JS", "VIEWER_CSS", "VIEWER_HTML", "VIEWER_JS"]


def _read(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


APP_CSS = _read("app.css")
SHOW_IMAGE_JS = _read("show_image.js")
VIEWER_CSS = _read("viewer.css")
VIEWER_HTML = _read("viewer.html")
VIEWER_JS = _read("viewer.js")
