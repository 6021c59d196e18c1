"""Docstrings filled from shared fragments, so that a text is written once."""

import inspect
import re
from collections.abc import Callable, Mapping

__all__ = ["fill_doc", "fill_docstring"]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def fill_docstring(doc: str | None, fragments: Mapping[str, str]) -> str | None:
    """Substitute shared fragments into a docstring.

    Each ``%(name)s`` in ``doc`` is replaced by ``fragments[name]``, itself
    filled the same way. Fragments are written flush left: their continuation
    lines get the indentation of the line that holds the placeholder, so a
    placeholder on a line of its own stands for whole numpydoc entries or
    sections. Nothing else in ``doc`` changes (``%`` and braces stay literal).
    ``None`` (docstrings stripped by ``python -OO``) stays ``None``.
    """
    if doc is None:
        return None

    def fill_line(line: str) -> str:
        indent = line[: len(line) - len(line.lstrip())]

        def fragment(match: re.Match) -> str:
            first, *rest = fill_docstring(fragments[match.group(1)], fragments).split(
                "\n"
            )
            return "\n".join([first, *(indent + r if r else r for r in rest)])

        return _PLACEHOLDER.sub(fragment, line)

    return "\n".join(fill_line(line) for line in doc.split("\n"))


def fill_doc(fragments: Mapping[str, str]) -> Callable[[Callable], Callable]:
    """Return a decorator that fills a function's docstring from ``fragments``.

    The ``%(name)s`` placeholders are replaced as :func:`fill_docstring` describes;
    ``%(<parameter>)s`` also stands for the default of that parameter of the
    function (it takes precedence over a fragment of the same name), so that a
    shared fragment states each function's own default.
    """

    def decorate(func: Callable) -> Callable:
        defaults = {
            name: str(param.default)
            for name, param in inspect.signature(func).parameters.items()
            if param.default is not param.empty
        }
        func.__doc__ = fill_docstring(func.__doc__, {**fragments, **defaults})
        return func

    return decorate
