"""MkDocs hook of the jaxopt_papers site: generated pages and folder entries in the nav.

Generated at build time, so that nothing is maintained by hand:

* ``api/``: one page per subpackage or module listed in ``jaxopt_papers.__all__``, with an entry
  for every name in that subpackage's ``__all__`` (grouped by the module that defines it, after
  that module's docstring), and ``api/index.md`` for the top-level names.
* ``benchmarks/index.md``: ``benchmarks/README.md`` with each ``benchmarks/results/<area>.png``
  placed in the section about ``<area>.py``; the images are copied into the site.
* ``notebooks/<name>.ipynb``: each ``notebooks/*.ipynb``, rendered by mkdocs-jupyter from its
  executed copy ``build/docs-executed/notebooks/<name>.ipynb`` (written by
  ``docs/_scripts/execute_notebooks.py``) when that copy was made from the current notebook, else
  from the notebook itself.

A nav entry whose value ends in ``/`` (``Getting started: guides/``) becomes the list of every page
under that folder: ``index`` first, then by the ``order`` key of a page's front matter (default
100), then by file name.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import logging
import os
import pathlib
import re
import sys
import types

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils.meta import get_data

log = logging.getLogger("mkdocs.hooks.jaxopt_papers")

PACKAGE = "jaxopt_papers"
EXECUTED_ENV = "JAXOPT_PAPERS_DOCS_EXECUTED"  # executed notebooks are in its notebooks/
REQUIRE_ENV = "JAXOPT_PAPERS_DOCS_REQUIRE_OUTPUTS"  # "1": a notebook without outputs is an error
SOURCE_KEY = "jaxopt_papers_docs_source_sha256"  # notebook metadata key of an executed copy

LATEST = "### Latest results"  # the heading after which a plot goes
_orders: dict[str, float] = {}  # src_uri -> nav order of generated pages


def repo_root(config) -> pathlib.Path:
    return pathlib.Path(config["config_file_path"]).resolve().parent


def executed_dir(root: pathlib.Path) -> pathlib.Path:
    base = os.environ.get(EXECUTED_ENV) or root / "build" / "docs-executed"
    return pathlib.Path(base) / "notebooks"


def source_digest(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- API reference


def _public_modules(pkg: types.ModuleType) -> list[str]:
    return [n for n in pkg.__all__ if isinstance(getattr(pkg, n), types.ModuleType)]


def _is_module_path(path: str) -> bool:
    return isinstance(sys.modules.get(path), types.ModuleType)


def _owner(obj, name: str, page: str, pkg: types.ModuleType, pages: list[str]) -> str:
    """The page that documents ``obj`` in full ('' is the top-level page)."""
    mod = getattr(obj, "__module__", None) or ""
    for sub in pages:
        full = f"{PACKAGE}.{sub}"
        if mod == full or mod.startswith(full + "."):
            return sub
    if name in pkg.__all__ and getattr(pkg, name, None) is obj:
        return ""
    return page


def _statically_bound(module_path: str, name: str) -> bool:
    """Whether ``name`` is bound at the top level of the module's source (griffe reads it)."""
    module = sys.modules.get(module_path)
    source = getattr(module, "__file__", None)
    if not source or not source.endswith(".py"):
        return False
    tree = ast.parse(pathlib.Path(source).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return True
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def _identifier(page: str, name: str, obj) -> str:
    """The path mkdocstrings renders ``name`` of ``page`` under (its anchor id).

    The public path (``jaxopt_papers.linear.cg``) where griffe can resolve it, else the path in
    the defining module: when a submodule of the same name shadows it (``optimizers.adan``) or
    when the package binds it lazily (a module ``__getattr__``).
    """
    parent = f"{PACKAGE}.{page}" if page else PACKAGE
    path = f"{parent}.{name}"
    if _is_module_path(path) or not _statically_bound(parent, name):
        path = f"{obj.__module__}.{name}"
    return path


def _defining_module(obj, page: str) -> str | None:
    """The public submodule of ``page`` that defines ``obj``, if any."""
    mod = getattr(obj, "__module__", None) or ""
    base = f"{PACKAGE}.{page}"
    if not mod.startswith(base + ".") or not _is_module_path(mod):
        return None
    if any(part.startswith("_") for part in mod[len(base) + 1 :].split(".")):
        return None
    return mod


def _directive(identifier: str, heading_level: int, **options) -> str:
    lines = [f"::: {identifier}", "    options:", f"      heading_level: {heading_level}"]
    lines += [f"      {key}: {json.dumps(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def api_pages() -> dict[str, str]:
    """``{src_uri: markdown}`` of the API reference."""
    pkg = importlib.import_module(PACKAGE)
    pages = _public_modules(pkg)
    out: dict[str, str] = {}
    for order, page in enumerate(pages):
        module = getattr(pkg, page)
        names = list(getattr(module, "__all__", []))
        if not names:
            raise ValueError(f"{PACKAGE}.{page} has no __all__: its API page would be empty")
        text = [f"# `{PACKAGE}.{page}`\n"]
        text.append(
            _directive(
                f"{PACKAGE}.{page}",
                1,
                members=False,
                show_root_heading=False,
                show_root_toc_entry=False,
            )
        )
        groups: dict[str | None, list[str]] = {}
        reexports: list[tuple[str, str]] = []
        for name in names:
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                continue
            owner = _owner(obj, name, page, pkg, pages)
            if owner != page:
                reexports.append((name, _identifier(owner, name, obj)))
                continue
            groups.setdefault(_defining_module(obj, page), []).append(name)
        for mod, members in groups.items():
            level = 2
            if mod is not None:
                text.append(_directive(mod, 2, members=False, show_root_full_path=True))
                level = 3
            for name in members:
                ident = _identifier(page, name, getattr(module, name))
                text.append(_directive(ident, level))
        if reexports:
            text.append("## Re-exported names\n")
            text.append("The same objects as documented elsewhere in this reference:\n")
            for name, target in reexports:
                anchor = f"{PACKAGE}.{page}.{name}"
                text.append(f'- <span id="{anchor}"></span>`{name}`: [`{target}`][{target}]')
            text.append("")
        out[f"api/{page}.md"] = "\n".join(text)
        _orders[f"api/{page}.md"] = order

    # The top-level page: the package docstring, what it defines, links to every page.
    text = [
        f"# `{PACKAGE}`\n",
        _directive(PACKAGE, 1, members=False, show_root_heading=False, show_root_toc_entry=False),
    ]
    text.append("## Subpackages\n\n| page | contents |\n|---|---|")
    for page in pages:
        doc = (getattr(pkg, page).__doc__ or "").strip().splitlines()
        text.append(f"| [`{PACKAGE}.{page}`]({page}.md) | {doc[0] if doc else ''} |")
    text.append("")
    flat = []
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        if isinstance(obj, types.ModuleType):
            continue
        owner = _owner(obj, name, "", pkg, pages)
        if owner == "":
            text.append(_directive(_identifier("", name, obj), 2))
        else:
            flat.append((name, _identifier(owner, name, obj)))
    if flat:
        text.append("## Flat re-exports\n")
        text.append(f"`import {PACKAGE} as jop` gives these names directly (`jop.adan`):\n")
        for name, target in flat:
            anchor = f"{PACKAGE}.{name}"
            text.append(f'- <span id="{anchor}"></span>`{name}`: [`{target}`][{target}]')
        text.append("")
    out["api/index.md"] = "\n".join(text)
    return out


# ----------------------------------------------------------------------------- benchmarks


def benchmarks_page(root: pathlib.Path) -> tuple[str, list[pathlib.Path]]:
    """``benchmarks/README.md`` with each area's plot in the section about ``<area>.py``."""
    text = (root / "benchmarks" / "README.md").read_text(encoding="utf-8")
    plots = sorted((root / "benchmarks" / "results").glob("*.png"))
    # Split at level-2 headings outside code fences.
    sections: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            sections.append([])
        sections[-1].append(line)
    unplaced = []
    for plot in plots:
        image = f"![{plot.stem} benchmark plot](results/{plot.name})"
        pattern = re.compile(rf"(?<![\w.]){re.escape(plot.stem)}\.py\b")
        # The section about <stem>.py: the first one that mentions it and has results, else the
        # first one that mentions it (e.g. "How to run" mentions every script but has no results).
        matches = [sec for sec in sections[1:] if pattern.search("\n".join(sec))]
        results = [sec for sec in matches if any(s.startswith(LATEST) for s in sec)]
        if not matches:
            unplaced.append(image)
            continue
        sec = (results or matches)[0]
        at = next((i for i, s in enumerate(sec) if s.startswith(LATEST)), None)
        if at is None:
            sec.append(f"\n{image}\n")
        else:
            sec.insert(at + 1, f"\n{image}\n")
    body = "\n".join("\n".join(sec) for sec in sections)
    if unplaced:
        body += "\n\n## Plots\n\n" + "\n\n".join(unplaced) + "\n"
    note = (
        "<!-- Generated from benchmarks/README.md by docs/_scripts/hooks.py; edit that file. -->\n"
    )
    return note + body, plots


# ----------------------------------------------------------------------------- notebooks


def notebook_source(path: pathlib.Path, root: pathlib.Path) -> tuple[pathlib.Path, bool]:
    """The file to render for ``path``: its executed copy if made from this very notebook."""
    copy = executed_dir(root) / path.name
    if copy.is_file():
        try:
            meta = json.loads(copy.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, ValueError):
            meta = {}
        if meta.get(SOURCE_KEY) == source_digest(path):
            return copy, True
    return path, False


# ----------------------------------------------------------------------------- events


@event_priority(100)  # before mkdocs-jupyter wraps the notebook files
def on_files(files: Files, config) -> Files:
    root = repo_root(config)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))

    for uri, content in api_pages().items():
        files.append(File.generated(config, uri, content=content))

    content, plots = benchmarks_page(root)
    files.append(File.generated(config, "benchmarks/index.md", content=content))
    for plot in plots:
        files.append(File.generated(config, f"benchmarks/results/{plot.name}", abs_src_path=plot))

    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        src, executed = notebook_source(nb, root)
        if not executed:
            message = (
                f"notebooks/{nb.name}: no executed copy of the current notebook in "
                f"{executed_dir(root)}; rendered without outputs (run `make docs`)"
            )
            (log.warning if os.environ.get(REQUIRE_ENV) == "1" else log.info)(message)
        # A plain File (not File.generated): mkdocs-jupyter reads ``abs_src_path`` from src_dir.
        uri = f"notebooks/{nb.name}"
        files.append(
            File(uri, str(src.parents[1]), config["site_dir"], config["use_directory_urls"])
        )

    _expand_nav(config, files)
    return files


def _page_order(file: File) -> tuple[float, str]:
    if file.src_uri.endswith(".md"):
        if file.src_uri in _orders:
            return (_orders[file.src_uri], file.src_uri)
        try:
            _, meta = get_data(file.content_string)
        except (OSError, ValueError):
            meta = {}
        try:
            return (float(meta.get("order", 100)), file.src_uri)
        except (TypeError, ValueError):
            return (100.0, file.src_uri)
    return (100.0, file.src_uri)


def _expand_nav(config, files: Files) -> None:
    pages = [f for f in files if f.src_uri.endswith((".md", ".ipynb"))]

    def folder(prefix: str) -> list:
        inside = [f for f in pages if f.src_uri.startswith(prefix) and f.src_uri != prefix]
        index = [f for f in inside if f.src_uri == prefix + "index.md"]
        rest = sorted((f for f in inside if f not in index), key=_page_order)
        if not inside:
            log.warning(f"nav: the folder {prefix} has no pages")
        return [f.src_uri for f in index + rest]

    def walk(entries):
        out = []
        for entry in entries:
            if isinstance(entry, dict):
                ((title, value),) = entry.items()
                if isinstance(value, str) and value.endswith("/"):
                    value = folder(value)
                elif isinstance(value, list):
                    value = walk(value)
                out.append({title: value})
            else:
                out.append(entry)
        return out

    config["nav"] = walk(config["nav"] or [])


_ARRIVING = re.compile(r"<!--\s*arriving:([\w\s]+)-->")
AREA_TITLES = {  # landing-page titles of areas whose rows are generated (the others are written)
    "smooth": "Smooth optimisation",
    "qp": "Quadratic programs",
    "fixed_point": "Fixed points",
    "quantized": "8-bit optimizer states",
    "bilevel": "Bilevel optimisation",
    "zeroth_order": "Zeroth-order gradients",
    "schedules": "Step sizes and schedules",
    "curvature": "Second-order methods",
    "federated": "Federated learning",
    "batch_size": "Adaptive batch sizes",
    "isotonic": "Isotonic regression",
    "objective": "Objective functions",
    "perturbations": "Perturbed optimizers",
    "scipy_wrappers": "SciPy wrappers",
}


def landing_markdown(markdown: str, config) -> str:
    """Keep the landing page's list of areas true to ``jaxopt_papers.__all__``.

    A subpackage listed in ``__all__`` without a row in the areas table gets one (its docstring's
    first line, its guide if ``docs/guides/<name>.md`` exists, its API page), and an item of the
    "Arriving" list tagged ``<!-- arriving: name ... -->`` is dropped once one of its names is in
    ``__all__``.
    """
    pkg = importlib.import_module(PACKAGE)
    shipped = set(_public_modules(pkg))
    docs_dir = pathlib.Path(config["docs_dir"])
    lines = markdown.split("\n")
    lines = [
        ln
        for ln in lines
        if not ((m := _ARRIVING.search(ln)) and shipped.intersection(m.group(1).split()))
    ]
    rows = [i for i, ln in enumerate(lines) if ln.startswith("|") and "](api/" in ln]
    if rows:
        listed = {
            n for ln in (lines[i] for i in rows) for n in re.findall(r"\]\(api/(\w+)\.md", ln)
        }
        new = []
        for name in _public_modules(pkg):
            if name in listed:
                continue
            doc = (getattr(pkg, name).__doc__ or "").strip().splitlines()
            title = AREA_TITLES.get(name, f"`{PACKAGE}.{name}`")
            links = [f"[API](api/{name}.md)"]
            if (docs_dir / "guides" / f"{name}.md").is_file():
                links.insert(0, f"[guide](guides/{name}.md)")
            new.append(f"| {title} | {doc[0] if doc else ''} | {' · '.join(links)} |")
        lines[rows[-1] + 1 : rows[-1] + 1] = new
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "index.md":
        return landing_markdown(markdown, config)
    return markdown


_HEADING = re.compile(r"<h([1-6])[^>]*\bid=\"([^\"]+)\"[^>]*>(.*?)</h\1>", flags=re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", _TAG.sub("", text).replace("¶", "")).strip()


def _subsequence(words: list[str], within: list[str]) -> bool:
    rest = iter(within)
    return all(any(w == v for v in rest) for w in words)


def on_page_content(html: str, page, config, files) -> str:
    """Point a notebook page's table of contents at the ids nbconvert gave its headings.

    mkdocs-jupyter builds the table of contents from a Markdown conversion of the notebook, whose
    slugs differ from nbconvert's heading ids as soon as a heading holds code or punctuation.
    """
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    headings = [(anchor, _plain(text)) for _, anchor, text in _HEADING.findall(html)]
    position = 0

    def fix(items):
        # The titles lose inline code in the Markdown conversion: match in order, by words.
        nonlocal position
        for item in items:
            title = _plain(item.title)
            for k in range(position, len(headings)):
                if _subsequence(title.split(), headings[k][1].split()):
                    item.id, position = headings[k][0], k + 1
                    break
            fix(item.children)

    fix(page.toc)
    return html
