"""`edgedistill list`: what recipes can name (model sources and names, dataset sources, methods)."""

from __future__ import annotations

import fnmatch

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def list_registered(what: str, pattern: str | None, source: str | None, console: Console) -> None:
    if what == "data":
        from ..data import DATA_SOURCES

        _table(console, "dataset sources (data.source)", ["name", "description"],
               [[e.name, e.meta.get("description", "")] for e in DATA_SOURCES])
    elif what == "methods":
        from ..distill import METHODS

        rows = []
        for e in METHODS:
            params = ", ".join(f"{k}={f.default}" for k, f in e.obj.Params.model_fields.items())
            rows.append([e.name, e.meta.get("family", ""), params or "–", e.meta.get("paper", "")])
        _table(console, "distillation methods (distill.terms[].name)", ["name", "family", "parameters", "paper"], rows)
    else:
        from ..models import MODEL_SOURCES

        if source is not None:
            MODEL_SOURCES.get(source, key="--source")
        rows = []
        for e in MODEL_SOURCES:
            if source and e.name != source:
                continue
            names = e.obj.names()
            if pattern:
                names = fnmatch.filter(names, pattern)
            shown = ", ".join(names[:40]) + (f", … ({len(names)} in all)" if len(names) > 40 else "")
            rows.append([f"{e.name}:", e.meta.get("description", ""), shown or "–"])
        _table(console, "model sources (teacher.model / student.model = SOURCE:NAME)",
               ["source", "description", "names"], rows)
        if source in (None, "arch"):
            _list_families(pattern, console)


def _list_families(pattern: str | None, console: Console) -> None:
    """The `arch:` families with each knob's allowed values and default, so a spec can be written by hand."""
    from ..models import FAMILIES, family_spec

    rows = []
    for e in FAMILIES:
        if pattern and not fnmatch.fnmatch(e.name, pattern):
            continue
        fam = e.obj
        knobs = "\n".join(f"{k}: {kn.allowed()} (default {kn.format(kn.default)}); {kn.help}"
                          for k, kn in fam.knobs.items())
        rows.append([e.name, f"{fam.description}; defaults = {fam.reference}", knobs, family_spec(e.name, {})])
    if rows:
        _table(console, "arch families (student.model = arch:FAMILY,key=value,…; omitted knobs take defaults)",
               ["family", "description", "knobs", "default spec"], rows, fold=True)


def _table(console: Console, title: str, header: list[str], rows: list[list[str]], fold: bool = False) -> None:
    table = Table(title=title, show_lines=True)
    for h in header:
        table.add_column(h, overflow="fold" if fold else "ellipsis")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    console.print(table)
