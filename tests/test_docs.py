"""The documentation site: a strict build, an API entry for every public name, internal links.

The site is built once (one test, so that pytest-xdist never builds it twice) with
``mkdocs build --strict``: a warning, e.g. a docstring that griffe cannot parse or a broken link,
fails the build. The notebooks are not executed here: the build is pointed at executed copies made
by this test (each notebook with one known output added), which checks that the site renders a
notebook's executed copy when it was made from the current notebook.
"""

from __future__ import annotations

import html.parser
import importlib
import json
import os
import pathlib
import posixpath
import subprocess
import sys
import types
import urllib.parse

import mkdocs  # noqa: F401  (the docs extra, part of the test extra)

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_scripts"))
from hooks import SOURCE_KEY, source_digest  # noqa: E402

PACKAGE = "jaxopt_papers"
SENTINEL = "docs-test-output-7f3a"  # the output given to each notebook's executed copy


class _Parser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.heading_ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
            if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
                self.heading_ids.add(attrs["id"])
        if attrs.get("name") and tag == "a":
            self.ids.add(attrs["name"])
        for key in ("href", "src"):
            if attrs.get(key) and tag in {"a", "img", "link", "script"}:
                self.links.append(attrs[key])


def build_site(tmp: pathlib.Path):
    """Build the site strictly into ``tmp/site``; return it and its parsed pages."""
    executed = tmp / "executed" / "notebooks"
    executed.mkdir(parents=True)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = next(c for c in nb["cells"] if c["cell_type"] == "code")
        code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": [SENTINEL]}]
        nb["metadata"][SOURCE_KEY] = source_digest(path)
        (executed / path.name).write_text(json.dumps(nb), encoding="utf-8")
    site_dir = tmp / "site"
    env = dict(os.environ, JAXOPT_PAPERS_DOCS_EXECUTED=str(tmp / "executed"))
    env.pop("JAXOPT_PAPERS_DOCS_REQUIRE_OUTPUTS", None)
    env["NO_MKDOCS_2_WARNING"] = "1"
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml")]
    proc = subprocess.run(
        [*cmd, "--site-dir", str(site_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln]
    if proc.returncode != 0:
        lines = warnings or proc.stderr.splitlines()[-30:]
        raise AssertionError("mkdocs build --strict failed:\n" + "\n".join(lines))
    pages = {}
    for page in site_dir.rglob("*.html"):
        parser = _Parser()
        parser.feed(page.read_text(encoding="utf-8"))
        pages[page.relative_to(site_dir).as_posix()] = parser
    return site_dir, pages


def _api_page(sub: str) -> str:
    return f"api/{sub}/index.html" if sub else "api/index.html"


def _public_entries():
    """``(page, name, obj)`` for every name in ``__all__`` of the package and its subpackages."""
    pkg = importlib.import_module(PACKAGE)
    entries = []
    for name in pkg.__all__:
        obj = getattr(pkg, name)
        if isinstance(obj, types.ModuleType):
            entries += [(name, n, getattr(obj, n)) for n in obj.__all__]
        else:
            entries.append(("", name, obj))
    return entries


def _candidate_ids(obj, entries) -> set[str]:
    """Every id under which ``obj`` may be documented in full."""
    ids = {f"{PACKAGE}.{p}.{n}" if p else f"{PACKAGE}.{n}" for p, n, o in entries if o is obj}
    module = getattr(obj, "__module__", None)
    ids |= {f"{module}.{n}" for p, n, o in entries if o is obj and module}
    return ids


def check_every_public_name_has_an_api_entry(site):
    _, pages = site
    entries = _public_entries()
    assert len(entries) > 50
    headings = set().union(*(p.heading_ids for p in pages.values()))
    missing = []
    for page, name, obj in entries:
        html_page = pages.get(_api_page(page))
        assert html_page is not None, f"no API page for {PACKAGE}.{page}"
        public = f"{PACKAGE}.{page}.{name}" if page else f"{PACKAGE}.{name}"
        candidates = _candidate_ids(obj, entries)
        on_page = html_page.ids & ({public} | candidates)
        documented = headings & candidates
        if not on_page or not documented:
            missing.append(public)
    assert not missing, f"public names without an API entry: {missing}"


def check_api_pages_are_exactly_the_subpackages_in_all(site):
    _, pages = site
    pkg = importlib.import_module(PACKAGE)
    subs = {n for n in pkg.__all__ if isinstance(getattr(pkg, n), types.ModuleType)}
    generated = {p.split("/")[1] for p in pages if p.startswith("api/") and p.count("/") == 2}
    assert generated == subs


def check_landing_page_lists_every_subpackage(site):
    site_dir, pages = site
    pkg = importlib.import_module(PACKAGE)
    subs = [n for n in pkg.__all__ if isinstance(getattr(pkg, n), types.ModuleType)]
    resolved = (_resolve("index.html", link, site_dir) for link in pages["index.html"].links)
    targets = {r[0] for r in resolved if r is not None}
    for sub in subs:
        assert f"api/{sub}/index.html" in targets, f"the landing page does not list {sub}"


def _resolve(page: str, link: str, site_dir: pathlib.Path) -> tuple[str, str] | None:
    """``(target page, fragment)`` of an internal link, None for an external one."""
    parts = urllib.parse.urlsplit(link)
    if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
        return None
    path = urllib.parse.unquote(parts.path)
    if path.startswith("/"):  # absolute: the site is served at the root of site_url
        target = posixpath.normpath(path.lstrip("/") or ".")
    elif path:
        target = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
    if path:
        if (site_dir / target).is_dir() or path.endswith("/"):
            target = posixpath.normpath(posixpath.join(target, "index.html"))
    else:
        target = page
    return target, urllib.parse.unquote(parts.fragment)


def check_internal_links_resolve(site):
    site_dir, pages = site
    broken = []
    checked = 0
    for page, parsed in pages.items():
        if page.startswith(("assets/", "search/")):
            continue
        for link in parsed.links:
            resolved = _resolve(page, link, site_dir)
            if resolved is None:
                continue
            target, fragment = resolved
            checked += 1
            if not (site_dir / target).is_file():
                broken.append(f"{page}: {link} (no {target})")
            elif fragment and target.endswith(".html"):
                if target not in pages or fragment not in pages[target].ids:
                    broken.append(f"{page}: {link} (no #{fragment} in {target})")
    assert checked > 500
    assert not broken, "broken internal links:\n" + "\n".join(sorted(set(broken)))


def check_every_guide_paper_and_notebook_is_in_the_nav_and_rendered(site):
    site_dir, pages = site
    nav_links = {
        _resolve("index.html", link, site_dir)[0]
        for link in pages["index.html"].links
        if _resolve("index.html", link, site_dir)
    }
    sources = [*sorted((ROOT / "docs").glob("guides/*.md"))]
    sources += sorted((ROOT / "docs").glob("papers/*.md"))
    sources += sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(sources) >= 20
    for src in sources:
        folder = "notebooks" if src.suffix == ".ipynb" else src.parent.name
        page = f"{folder}/index.html" if src.stem == "index" else f"{folder}/{src.stem}/index.html"
        assert page in pages, f"{src} was not rendered"
        assert page in nav_links, f"{src} is not in the navigation"


def check_notebooks_are_rendered_from_their_executed_copies(site):
    site_dir, _ = site
    for src in sorted((ROOT / "notebooks").glob("*.ipynb")):
        text = (site_dir / "notebooks" / src.stem / "index.html").read_text(encoding="utf-8")
        assert SENTINEL in text, f"{src.name}: the executed copy's output is not in the page"


def check_benchmark_page_has_the_report_and_every_plot(site):
    site_dir, pages = site
    text = (site_dir / "benchmarks" / "index.html").read_text(encoding="utf-8")
    readme = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    headings = [ln[3:].strip() for ln in readme.splitlines() if ln.startswith("## ")]
    assert headings
    for heading in headings:
        plain = heading.replace("`", "")
        assert plain in text.replace("<code>", "").replace("</code>", ""), heading
    links = pages["benchmarks/index.html"].links
    for png in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        assert f"results/{png.name}" in links, f"{png.name} is not on the benchmark page"
        assert (site_dir / "benchmarks" / "results" / png.name).read_bytes() == png.read_bytes()


CHECKS = [
    check_every_public_name_has_an_api_entry,
    check_api_pages_are_exactly_the_subpackages_in_all,
    check_landing_page_lists_every_subpackage,
    check_internal_links_resolve,
    check_every_guide_paper_and_notebook_is_in_the_nav_and_rendered,
    check_notebooks_are_rendered_from_their_executed_copies,
    check_benchmark_page_has_the_report_and_every_plot,
]


def test_docs_site(tmp_path):
    """One strict build (about 15 s of CPU), then every check on it; all failures are reported.

    A single test, so that pytest-xdist never builds the site twice.
    """
    site = build_site(tmp_path)
    failures = []
    for check in CHECKS:
        try:
            check(site)
        except AssertionError as error:
            failures.append(f"{check.__name__}: {error}")
    assert not failures, "\n\n".join(failures)
