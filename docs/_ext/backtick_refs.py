"""Griffe extension: eapu's docstrings written for a reader become cross-referenced pages.

The docstrings name objects in single backticks (`eapu.devices.Device`, `InSituOptimizer`,
`Device.sample`) and show examples as doctest paragraphs (``>>> ...``). Markdown would render
the first as plain code and the second as nested block quotes, so before the docstrings are
parsed this extension rewrites, outside code:

- a single-backtick span that is a full dotted path under ``eapu.`` becomes a cross-reference
  that must resolve: a module or object that does not exist, or is not documented, fails the
  strict build (``mkdocs build --strict``), so a stale name cannot survive a rename;
- a single-backtick span that is a bare or dotted name resolving in the docstring's scope
  (the module's names and imports, the class's members) to a public eapu object becomes a
  link where that object is documented, and stays code elsewhere (names of arguments,
  expressions and other libraries' objects are left as they are);
- a Sphinx role (``:func:`name` ``, ``:class:`~torch.Tensor` ``) is read as the name in
  backticks (``~``: shown by its last component);
- an attribute without a docstring takes the Sphinx doc-comment above it (``#: text`` lines);
- a doctest paragraph becomes a ``pycon`` code block;
- in an ``Args:`` section, one entry for several parameters (``rows, cols: array size``)
  becomes one entry per parameter with the same text, so the parser still checks every
  name against the signature.

A span in double backticks (````eapu.tasks````, the entry-point group) is literal code and is
never linked. Loaded by mkdocstrings' Python handler (``extensions:`` in ``mkdocs.yml``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["BacktickRefs"]

_ROLE = r":(?:py:)?(?:func|class|data|meth|mod|attr|obj|exc):(?P<tilde>~?)"
_SPAN = re.compile(rf"(?:{_ROLE})?(?<!`)`(?P<text>[^`\n]+)`(?!`)")
_NAME = re.compile(r"^(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?P<call>\(\))?$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_DOCTEST = re.compile(r"^(?P<indent>\s*)>>> ")
_SECTION = re.compile(r"^(?P<indent>\s*)(Args|Arguments|Parameters|Other Parameters):\s*$")
_SHARED = re.compile(r"^(?P<indent>\s+)(?P<names>\w+(?:\s*,\s*\w+)+):(?P<text>.*)$")
_ROOT = "eapu"


def _is_public(path: str) -> bool:
    return not any(part.startswith("_") for part in path.split("."))


def _exists(collection: griffe.ModulesCollection, path: str) -> bool:
    try:
        obj = collection[path]
        if obj.is_alias:
            obj.final_target  # noqa: B018 - raises when the alias points nowhere
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


class BacktickRefs(griffe.Extension):
    """Turn backticked names into autorefs and doctest paragraphs into code blocks."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite every docstring of the package once its object tree is complete."""
        if pkg.name != _ROOT:
            return
        collection = loader.modules_collection
        for obj in _walk(pkg):
            if obj.docstring is None and obj.is_attribute:
                obj.docstring = _doc_comment(obj)
            if obj.docstring is not None:
                obj.docstring.value = self._rewrite(obj, obj.docstring.value, collection)

    def _rewrite(self, obj: griffe.Object, text: str, collection: griffe.ModulesCollection) -> str:
        out: list[str] = []
        fenced = False
        doctest_indent: str | None = None
        args_indent: str | None = None
        for line in text.split("\n"):
            if args_indent is not None and line.strip():
                if len(line) - len(line.lstrip()) <= len(args_indent):
                    args_indent = None
                elif m := _SHARED.match(line):
                    for name in re.split(r"\s*,\s*", m["names"]):
                        out.append(f"{m['indent']}{name}:{self._spans(obj, m['text'], collection)}")
                    continue
            if m := _SECTION.match(line):
                args_indent = m["indent"]
            if doctest_indent is not None:
                if line.strip():
                    out.append(line)
                    continue
                out.append(f"{doctest_indent}```")
                doctest_indent = None
            if _FENCE.match(line):
                fenced = not fenced
                out.append(line)
                continue
            if fenced:
                out.append(line)
                continue
            if m := _DOCTEST.match(line):
                doctest_indent = m["indent"]
                out.append(f"{doctest_indent}```pycon")
                out.append(line)
                continue
            out.append(self._spans(obj, line, collection))
        if doctest_indent is not None:
            out.append(f"{doctest_indent}```")
        return "\n".join(out)

    def _spans(self, obj: griffe.Object, line: str, collection: Any) -> str:
        return _SPAN.sub(lambda s: self._link(obj, s, collection), line)

    def _link(self, obj: griffe.Object, span: re.Match[str], collection: Any) -> str:
        text = span["text"]
        m = _NAME.match(text)
        if m is None:
            return span[0]
        path = m["path"]
        if span["tilde"]:
            text = path.rpartition(".")[2] + (m["call"] or "")
        code = f"`{text}`"
        if path == _ROOT or path.startswith(_ROOT + "."):
            # A full path: it must exist and be documented, else the strict build fails.
            if _exists(collection, path) and not _is_public(path):
                return code
            return f"[{code}][{path}]"
        head, _, rest = path.partition(".")
        try:
            resolved = obj.resolve(head)
        except griffe.NameResolutionError:
            return code
        target = f"{resolved}.{rest}" if rest else resolved
        if not target.startswith(_ROOT + ".") or not _is_public(target):
            return code
        if not _exists(collection, target):
            return code
        # Optional: linked where the object is documented, plain code where it is not.
        return f'<autoref identifier="{target}" optional><code>{text}</code></autoref>'


def _doc_comment(attr: griffe.Object) -> griffe.Docstring | None:
    """The ``#:`` comment lines right above an attribute's assignment, as its docstring."""
    if attr.lineno is None:
        return None
    lines = attr.module.lines
    text: list[str] = []
    i = attr.lineno - 2  # the line above, 0-based
    while i >= 0 and (m := re.match(r"^\s*#:\s?(.*)$", lines[i])):
        text.insert(0, m[1])
        i -= 1
    if not text:
        return None
    return griffe.Docstring("\n".join(text), lineno=i + 2, parent=attr)


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member)
