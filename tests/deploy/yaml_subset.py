"""Read the YAML of deploy/ when PyYAML is not installed: a loader for the subset those files are written in.

The project's dev environment has no YAML library (PyYAML is not a dependency of anything), and the deploy tests
must not need one to run. `load()` uses PyYAML when it is importable and this loader otherwise.

Supported, and all that deploy/ uses: block mappings and sequences by indentation (a sequence may sit at its key's
indentation, as compose files often write it), `- key: value` items, plain/single-/double-quoted scalars, ints,
floats, booleans, null, flow sequences of scalars (`["CMD", "x"]`, `[]`), the empty flow mapping `{}`, comments, anchors
(`&name`), aliases (`*name`) and merge keys (`<<: *name`). Not supported (it raises): block scalars (`|`, `>`),
multi-document streams, tags, non-empty flow mappings.
"""

import json
import re
from pathlib import Path
from typing import Any

try:
    import yaml as _pyyaml
except ImportError:  # pragma: no cover - depends on the environment
    _pyyaml = None


class UnsupportedYaml(ValueError):
    pass


def load(path: Path) -> Any:
    return loads(path.read_text())


def loads(text: str) -> Any:
    if _pyyaml is not None:
        return _pyyaml.safe_load(text)
    return SubsetLoader(text).load()


_INT = re.compile(r"[-+]?\d+")
_FLOAT = re.compile(r"[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?")
_ANCHOR = re.compile(r"&([A-Za-z0-9_-]+)\s*")


def _strip_comment(line: str) -> str:
    """Drop a `#` comment that starts a line or follows a space, outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip()
    return line.rstrip()


def _scalar(token: str) -> Any:
    token = token.strip()
    if token.startswith('"'):
        return json.loads(token)
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token in ("", "~", "null", "Null", "NULL"):
        return None
    if token in ("true", "True", "TRUE"):
        return True
    if token in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(token):
        return int(token)
    if _FLOAT.fullmatch(token):
        return float(token)
    if token[0] in "|>!%@`" or (token[0] == "{" and token != "{}"):
        raise UnsupportedYaml(f"unsupported YAML value: {token!r}")
    return token


def _split_key(text: str) -> tuple[str, str] | None:
    """`key: rest` -> (key, rest); None when `text` is not a mapping entry."""
    if text[0] in "\"'":
        end = text.index(text[0], 1)
        key, rest = text[1:end], text[end + 1 :]
        return (key, rest[1:].strip()) if rest.startswith(":") else None
    match = re.match(r"([^\s:\[\]{},][^:]*?):(\s+|$)(.*)", text)
    return (match.group(1), match.group(3)) if match else None


class SubsetLoader:
    def __init__(self, text: str) -> None:
        self.lines: list[tuple[int, str]] = []
        for raw in text.splitlines():
            if raw.strip() == "---" and not self.lines:
                continue
            line = _strip_comment(raw)
            if line.strip():
                if "\t" in line[: len(line) - len(line.lstrip())]:
                    raise UnsupportedYaml("tab indentation")
                self.lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
        self.position = 0
        self.anchors: dict[str, Any] = {}

    def load(self) -> Any:
        if not self.lines:
            return None
        value = self._block(self.lines[0][0])
        if self.position != len(self.lines):
            raise UnsupportedYaml(f"unexpected indentation at: {self.lines[self.position][1]!r}")
        return value

    def _block(self, indent: int) -> Any:
        text = self.lines[self.position][1]
        if text == "-" or text.startswith("- "):
            return self._sequence(indent)
        return self._mapping(indent)

    def _value(self, rest: str, parent_indent: int, sequence_allowed_at_parent: bool) -> Any:
        """The value after `key:` or `- `: inline, or a nested block on the following lines."""
        anchor = None
        match = _ANCHOR.match(rest)
        if match:
            anchor, rest = match.group(1), rest[match.end() :]
        if rest:
            value = self._inline(rest)
        elif self.position < len(self.lines) and (
            self.lines[self.position][0] > parent_indent
            or (
                sequence_allowed_at_parent
                and self.lines[self.position][0] == parent_indent
                and self.lines[self.position][1].startswith("-")
            )
        ):
            value = self._block(self.lines[self.position][0])
        else:
            value = None
        if anchor:
            self.anchors[anchor] = value
        return value

    def _inline(self, text: str) -> Any:
        if text.startswith("*"):
            return self.anchors[text[1:]]
        if text.startswith("["):
            inner = text[1:-1].strip()
            if not text.endswith("]"):
                raise UnsupportedYaml(f"multi-line flow sequence: {text!r}")
            return [_scalar(item) for item in _split_flow(inner)] if inner else []
        if text == "{}":
            return {}
        return _scalar(text)

    def _mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while self.position < len(self.lines):
            line_indent, text = self.lines[self.position]
            if line_indent < indent or (line_indent == indent and text.startswith("-")):
                break
            if line_indent > indent:
                raise UnsupportedYaml(f"unexpected indentation at: {text!r}")
            entry = _split_key(text)
            if entry is None:
                raise UnsupportedYaml(f"not a mapping entry: {text!r}")
            key, rest = entry
            self.position += 1
            value = self._value(rest, indent, sequence_allowed_at_parent=True)
            if key == "<<":
                for merged_key, merged_value in value.items():
                    result.setdefault(merged_key, merged_value)
            else:
                result[key] = value
        return result

    def _sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while self.position < len(self.lines):
            line_indent, text = self.lines[self.position]
            if line_indent != indent or not (text == "-" or text.startswith("- ")):
                break
            item = text[1:].strip()
            if item and _split_key(item) is not None and not item.startswith(("*", "[", '"', "'")):
                # `- key: value` starts a mapping whose entries sit at the indentation after the dash.
                item_indent = indent + (len(text) - len(text[1:].lstrip()))
                self.lines[self.position] = (item_indent, item)
                result.append(self._mapping(item_indent))
            else:
                self.position += 1
                result.append(self._value(item, indent, sequence_allowed_at_parent=False))
        return result


def _split_flow(inner: str) -> list[str]:
    items, current, quote = [], "", None
    for char in inner:
        if quote:
            current += char
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current += char
        elif char == ",":
            items.append(current.strip())
            current = ""
        elif char in "[]{}":
            raise UnsupportedYaml(f"nested flow collection: [{inner}]")
        else:
            current += char
    if current.strip():
        items.append(current.strip())
    return items
