"""Griffe extension: read the package's docstrings and equinox classes as the site needs them.

Applied once the package is loaded, to the site only (``help()`` shows the docstrings unchanged):

* Sphinx cross-reference roles (``:class:`Solution```, ``:func:`~jaxopt_papers.ot.sinkhorn```)
  become optional cross-references: the name, resolved in the scope of the object whose docstring
  it is, links to its API entry when it has one and stays plain code otherwise (``~`` shows the
  last component only, as in Sphinx).
* An ``Example:`` section is read as Google style's ``Examples:``, so its doctest lines are
  rendered as code.
* An ``Args:`` entry naming several parameters (``tol, max_steps: ...``, the names possibly
  wrapped over two lines) becomes one entry per name with the shared description, which
  Google style requires.
* reStructuredText's ``::`` before a literal block becomes ``:`` (the indented block is already
  code in Markdown).
* ``equinox.Module`` and ``typing.NamedTuple`` subclasses get an ``__init__`` signature made of
  their annotated fields, as ``dataclasses.dataclass`` classes get from griffe, so that their
  ``Args:`` sections document real parameters.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc):`(~?)([\w.]+)(?:\(\))?`")
EXAMPLE = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)
LITERAL = re.compile(r"(\S)[ \t]*::[ \t]*$", flags=re.MULTILINE)
SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Attributes|Other Parameters):\s*$")
NAMES = re.compile(r"^(\s+)([*\w]+(?:\s*,\s*[*\w]+)+)\s*:(.*)$")
NAME_LIST = re.compile(r"^\s+[*\w]+(?:\s*,\s*[*\w]+)*\s*,\s*$")
# flax linen modules are dataclasses too: their fields are the constructor arguments
EQX_MODULE = {
    "equinox.Module",
    "equinox._module.Module",
    "eqx.Module",
    "flax.linen.Module",
    "flax.linen.module.Module",
}
NAMED_TUPLE = {"typing.NamedTuple", "NamedTuple"}


def _resolve(obj: griffe.Object, name: str) -> str:
    if name.startswith("jaxopt_papers."):
        return name
    head, _, tail = name.partition(".")
    scope = obj if obj.is_module or obj.is_class else obj.parent
    try:
        base = scope.resolve(head)
    except (griffe.NameResolutionError, AttributeError):
        return name
    return f"{base}.{tail}" if tail else base


def _split_names(text: str) -> str:
    """One ``Args:`` entry per name: ``a, b: desc`` -> ``a: desc`` and ``b: desc``."""
    lines = text.split("\n")
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        header = SECTION.match(line)
        indent = len(line) - len(line.lstrip())
        if header:
            section_indent = len(header.group(1))
        elif line.strip() and section_indent is not None and indent <= section_indent:
            section_indent = None
        if section_indent is not None and not header:
            # Names wrapped over lines: "a, b, c,\n    d, e: desc".
            while NAME_LIST.match(line) and i + 1 < len(lines) and lines[i + 1].strip():
                i += 1
                line = line.rstrip() + " " + lines[i].strip()
            match = NAMES.match(line)
            if match:
                lead, names, desc = match.groups()
                rest = []  # the description's continuation lines
                while (
                    i + 1 < len(lines)
                    and lines[i + 1].strip()
                    and len(lines[i + 1]) - len(lines[i + 1].lstrip()) > len(lead)
                ):
                    i += 1
                    rest.append(lines[i])
                for name in (n.strip() for n in names.split(",")):
                    out.append(f"{lead}{name}:{desc}")
                    out.extend(rest)
                i += 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _rewrite(obj: griffe.Object, text: str) -> str:
    def role(match: re.Match) -> str:
        short, name = match.groups()
        shown = name.rsplit(".", 1)[-1] if short else name
        target = _resolve(obj, name)
        return f'<autoref identifier="{target}" optional><code>{shown}</code></autoref>'

    text = ROLE.sub(role, text)
    text = _split_names(text)
    text = EXAMPLE.sub(r"\1Examples:", text)
    return _fence_literals(LITERAL.sub(r"\1:", text), text)


LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")


def _in_list_item(lines: list[str], i: int) -> bool:
    """Whether line ``i`` belongs to a paragraph that starts with a list marker."""
    while i > 0 and lines[i - 1].strip():
        i -= 1
    return bool(LIST_ITEM.match(lines[i]))


def _fence_literals(text: str, original: str) -> str:
    """Fence the indented block after each ``::`` (Markdown would join it to a list item)."""
    lines, src = text.split("\n"), original.split("\n")
    if len(lines) != len(src):
        return text
    out, i = [], 0
    while i < len(lines):
        out.append(lines[i])
        if src[i].rstrip().endswith("::") and i + 2 < len(lines) and not lines[i + 1].strip():
            base = len(src[i]) - len(src[i].lstrip())
            j = i + 2
            block = []
            while j < len(lines) and (
                not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > base
            ):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
                j -= 1
            if block:
                indent = min(len(b) - len(b.lstrip()) for b in block if b.strip())
                if not _in_list_item(src, i):  # at the paragraph's own level, not indented code
                    block = [b[indent - base :] for b in block]
                    indent = base
                fence = " " * indent + "```text"
                out += ["", fence, *block, " " * indent + "```"]
                i = j
                continue
        i += 1
    return "\n".join(out)


def _is_eqx_module(cls: griffe.Class, seen: set[str]) -> bool:
    if cls.path in seen:
        return False
    seen.add(cls.path)
    for base in cls.bases:
        path = base.canonical_path if isinstance(base, griffe.Expr) else str(base)
        if path in EQX_MODULE or path in NAMED_TUPLE:
            return True
        try:
            target = cls.modules_collection.get_member(path) if path else None
        except (KeyError, AttributeError, ValueError):
            target = None
        if isinstance(target, griffe.Alias):
            try:
                target = target.final_target
            except griffe.AliasResolutionError:
                target = None
        if isinstance(target, griffe.Class) and _is_eqx_module(target, seen):
            return True
    return False


def _field_parameters(cls: griffe.Class) -> list[griffe.Parameter]:
    params = []
    for member in cls.members.values():
        if member.is_alias or not member.is_attribute or member.annotation is None:
            continue
        if "class-attribute" in member.labels and "instance-attribute" not in member.labels:
            if member.value is None and not str(member.annotation).startswith("ClassVar"):
                pass  # an annotated field without a default
            elif str(member.annotation).startswith("ClassVar"):
                continue
        default = member.value
        if isinstance(default, griffe.ExprCall) and str(default.function).endswith("field"):
            kwargs = {
                a.name: a.value for a in default.arguments if isinstance(a, griffe.ExprKeyword)
            }
            if kwargs.get("init") == "False":
                continue
            default = kwargs.get("default")
        params.append(griffe.Parameter(member.name, annotation=member.annotation, default=default))
    return params


def _eqx_init(cls: griffe.Class) -> None:
    if "__init__" in cls.members or not _is_eqx_module(cls, set()):
        return
    chain = []
    try:
        chain = [c for c in reversed(cls.mro()) if isinstance(c, griffe.Class)]
    except (ValueError, griffe.AliasResolutionError):
        chain = []
    fields: dict[str, griffe.Parameter] = {}
    for klass in [*chain, cls]:
        for param in _field_parameters(klass):
            fields[param.name] = param
    init = griffe.Function(
        "__init__",
        lineno=0,
        endlineno=0,
        parent=cls,
        parameters=griffe.Parameters(griffe.Parameter("self"), *fields.values()),
        returns="None",
    )
    cls.set_member("__init__", init)


def _walk(obj: griffe.Object, seen: set[str]) -> None:
    if obj.path in seen:
        return
    seen.add(obj.path)
    if obj.docstring is not None:
        obj.docstring.value = _rewrite(obj, obj.docstring.value)
    if obj.is_class:
        _eqx_init(obj)
    for member in list(obj.members.values()):
        if not member.is_alias:
            _walk(member, seen)


class SiteDocstrings(griffe.Extension):
    """Apply the rewrites of the module docstring once a package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
