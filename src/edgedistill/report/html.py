"""report.html beside report.md: the same content, one self-contained file (images inline, no network)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt  # rich's own markdown parser: no new dependency

from ..atomic import atomic_write_text

_STYLE = """body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5;padding:0 3px}"""
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def _inline(match: re.Match[str], base: Path) -> str:
    src = html.unescape(match.group(1))
    path = base / src
    mime = _MIME.get(path.suffix.lower())
    if "://" in src or mime is None or not path.is_file():
        return match.group(0)
    data = base64.b64encode(path.read_bytes()).decode()
    return f'src="data:{mime};base64,{data}"'


def markdown_to_html(text: str, base: Path, title: str = "edgedistill report") -> str:
    """CommonMark + tables to one HTML page; local images become data: URIs so the file travels alone."""
    body = MarkdownIt("commonmark").enable("table").render(text)
    body = re.sub(r'src="([^"]+)"', lambda m: _inline(m, base), body)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n{body}</body></html>\n")


def write_html(md_path: Path, title: str = "edgedistill report") -> Path:
    """report.md → report.html in the same folder."""
    out = md_path.with_suffix(".html")
    atomic_write_text(out, markdown_to_html(md_path.read_text(), md_path.parent, title))
    return out
