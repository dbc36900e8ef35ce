"""Reading YAML files someone else wrote: site files, device profiles, rule packs.

A config file comes from outside the program, so the reader is careful about what it reads:

* only **regular files** are opened (``/dev/zero`` never ends, a FIFO or ``/dev/stdin`` waits
  for a writer), and only up to a **size bound** given by the caller;
* the C loader (libyaml) parses when PyYAML has it: a 5 MB device list in seconds, not a minute;
* **aliases** may not expand the document by more than :data:`MAX_ALIAS_NODES` nodes, and may
  not refer to themselves: nine levels of nine aliases are 387 million nodes for whatever walks
  the document (validation, an error message);
* an error message formats a value with :func:`short_repr`, which never formats more than it
  prints.

Problems are :class:`YamlFileError`; the site config and the rule packs turn them into their own
errors, naming the file.
"""

from __future__ import annotations

import os
import reprlib
import stat
from pathlib import Path
from typing import Any, Final

import yaml

__all__ = [
    "MAX_ALIAS_NODES",
    "Loader",
    "YamlFileError",
    "load_yaml",
    "read_text_file",
    "short_repr",
]

#: Nodes aliases may add to a document beyond those written in it.
MAX_ALIAS_NODES: Final = 1_000_000
#: The safe loader, in C when PyYAML was built with libyaml.
Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


class YamlFileError(ValueError):
    """A YAML file cannot be used: ``where`` in it (``line 3 column 1`` or ""), what ``problem``
    was found and what is ``allowed``. The message never quotes the file's content."""

    def __init__(self, path: Path | str, problem: str, allowed: str, where: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.allowed = allowed
        self.where = where
        super().__init__(f"{problem}: {allowed}")


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_text_file(path: Path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of ``path`` if it is a regular file of at most ``max_bytes`` bytes."""
    mib = f"{max_bytes / 2**20:g} MiB"
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise YamlFileError(
                path, f"not a regular file ({_kind(st.st_mode)})", f"a {what} is a regular file"
            )
        if st.st_size > max_bytes:
            raise YamlFileError(
                path, f"larger than {mib} ({st.st_size} bytes)", f"a {what} is at most {mib}"
            )
        # O_NONBLOCK: should the path turn into a FIFO after the check, open() does not wait
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise YamlFileError(path, "not a regular file", f"a {what} is a regular file")
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise YamlFileError(path, f"{what} file not found", "a readable file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        if isinstance(exc, YamlFileError):
            raise
        reason = getattr(exc, "strerror", None) or str(exc)
        raise YamlFileError(path, f"cannot read {what}: {reason}", "a readable file") from None
    if len(data) > max_bytes:
        raise YamlFileError(path, f"larger than {mib}", f"a {what} is at most {mib}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError(
            path, f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}", "UTF-8 text"
        ) from None


def load_yaml(text: str, path: Path | str) -> Any:
    """Parse one YAML document with the safe loader; refuse alias bombs and self-references."""
    try:
        data = yaml.load(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise YamlFileError(path, f"YAML syntax error: {problem}", "valid YAML", where) from None
    except RecursionError:
        raise YamlFileError(path, "nested too deeply", "valid YAML") from None
    written, expanded = _node_counts(data, path)
    if expanded - written > MAX_ALIAS_NODES:
        raise YamlFileError(
            path,
            f"aliases expand the document to {expanded} nodes ({written} written)",
            f"aliases may add at most {MAX_ALIAS_NODES} nodes",
        )
    return data


def _node_counts(root: Any, path: Path | str) -> tuple[int, int]:
    """``(written, expanded)``: nodes as written (each mapping or sequence once) and as seen by
    whatever walks the document, every alias expanded. Linear in the written size."""
    expanded: dict[int, int] = {}
    visiting: set[int] = set()
    written = 1
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, list | dict):
            continue
        key = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if finished:
            expanded[key] = (
                1
                + len(node)
                + sum(expanded[id(c)] - 1 for c in children if isinstance(c, list | dict))
            )
            visiting.discard(key)
            continue
        if key in expanded:
            continue
        if key in visiting:
            raise YamlFileError(path, "an alias refers to itself", "aliases to finished nodes")
        visiting.add(key)
        written += len(node)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, list | dict))
    return written, expanded.get(id(root), 1)


_short = reprlib.Repr()
_short.maxlevel = 3
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxfrozenset = 6
_short.maxdict = 6
_short.maxstring = _short.maxother = 80
_short.maxlong = 40


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, without formatting what is cut: a shared
    structure of 387 million nodes costs as little as a short list."""
    try:
        text = _short.repr(value)
    except Exception:  # e.g. an int too long to convert, a broken __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
