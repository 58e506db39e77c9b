"""The YAML front end: *.herc.yaml text -> the generic syntax tree (syntax.py).

Three steps: compose the YAML keeping node positions; validate it against
schemas/spec.schema.json, reporting every error at its node; turn the nodes
into the very Stmt/Value shapes the .herc parser builds, so that build_ast
gives both front ends one meaning and one set of value checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.events import AliasEvent
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode

from hercc import codes
from hercc.diagnostics import Diagnostic, SpecError, did_you_mean
from hercc.source import Span
from hercc.syntax import SourceFile, Stmt, Value

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_NULL = "tag:yaml.org,2002:null"
_FLAGS = ("nat", "unreachable")  # true -> a bare flag statement, false -> nothing
_YAML = SafeConstructor()  # only for its stateless integer reader
_TYPE_WORDS = {
    "string": "a string",
    "integer": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
    "scalar": "a single value",  # string or integer: the value's parser checks it
}


# What aliases (*name) may repeat, in YAML nodes: a few lines of nested aliases
# (a "billion laughs") would otherwise expand to gigabytes in the steps below.
ALIAS_NODES = 100_000
ALIAS_RATIO = 10  # ... or this many times the nodes written before the alias, if more


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts what each alias repeats, and refuses recursive aliases
    and too much repetition, at the alias.

    The pure-Python loader on purpose: libyaml's CSafeLoader is about 15x faster,
    but on mutated copies of examples/reference.herc.yaml it put one syntax error
    in six at another position, worded most others differently, and accepted or
    refused other documents than this loader (tabs, ":" in plain scalars). The
    position of an error is what a user acts on; the YAML front end keeps it exact.
    """

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self.path = path
        self.sizes: dict[int, int] = {}  # id(node) -> its nodes, aliases expanded
        self.repeated = 0  # nodes added by aliases so far

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:
                self._repeat(target, _span_of_marks(self.path, event.start_mark, event.end_mark))
            return super().compose_node(parent, index)
        node = super().compose_node(parent, index)
        if isinstance(node, MappingNode):
            self.sizes[id(node)] = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            self.sizes[id(node)] = 1 + sum(self._size(item) for item in node.value)
        elif node is not None:
            self.sizes[id(node)] = 1
        return node

    def _size(self, node: Node) -> int:
        return self.sizes[id(node)]

    def _repeat(self, target: Node, span: Span) -> None:
        size = self.sizes.get(id(target))
        if size is None:  # its anchor is still open: the alias is inside it
            raise SpecError([Diagnostic(codes.YAML_SCHEMA, "recursive YAML alias", span)])
        self.repeated += size
        limit = max(ALIAS_NODES, ALIAS_RATIO * len(self.sizes))
        if self.repeated > limit:
            raise SpecError([Diagnostic(
                codes.YAML_SCHEMA,
                f"YAML aliases repeat more than {limit} nodes",
                span,
                f"aliases may repeat {ALIAS_NODES} nodes, or {ALIAS_RATIO} times the nodes "
                "written before them if that is more: write the repeated parts out",
            )])  # fmt: skip


@cache
def _validator() -> Draft202012Validator:
    schema = resources.files("hercc").joinpath("schemas/spec.schema.json")
    return Draft202012Validator(json.loads(schema.read_text(encoding="utf-8")))


def parse_yaml(text: str, path: str) -> SourceFile:
    """Parse a YAML spec; raises SpecError with every syntax or schema error found."""
    try:
        loader = _Loader(text, path)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise SpecError([_yaml_error(exc, path, text)]) from None
    if root is None:  # an empty document, like an empty .herc file
        return SourceFile(path, text, ())
    diags: list[Diagnostic] = []
    instance = _plain(root, path, diags)
    diags.extend(_schema_errors(instance, root, path))
    if diags:
        raise SpecError(list(dict.fromkeys(diags)))  # "required" errors may repeat
    assert isinstance(root, MappingNode)  # the schema's top-level type
    return SourceFile(path, text, tuple(_Builder(path).top(root)))


# ---------------------------------------------------------------- checks


def _yaml_error(exc: yaml.YAMLError, path: str, text: str) -> Diagnostic:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        hint = None
        if exc.context_mark and exc.context_mark.line + 1 != line:
            hint = f"see also line {exc.context_mark.line + 1}"
        message = ", ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        span = Span.point(path, line, col)
        return Diagnostic(codes.SYNTAX, f"invalid YAML: {message}", span, hint)
    # A ReaderError: a character YAML does not allow; it knows only its offset.
    pos = exc.position if isinstance(exc, yaml.reader.ReaderError) else 0
    line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    message = str(exc).splitlines()[0]
    return Diagnostic(codes.SYNTAX, f"invalid YAML: {message}", Span.point(path, line, col))


def _plain(node: Node, file: str, diags: list[Diagnostic]) -> Any:
    """The node as JSON data for the schema; records non-scalar and duplicate keys.

    Only booleans, integers and null get their YAML 1.1 types: floats and
    timestamps stay text, so that the value parsers judge them precisely.
    """
    if isinstance(node, ScalarNode):
        if node.tag == _BOOL:
            return _truth(node)
        if node.tag == _INT:
            return _YAML.construct_yaml_int(node)
        return None if node.tag == _NULL else node.value
    if isinstance(node, SequenceNode):
        return [_plain(item, file, diags) for item in node.value]
    out: dict[str, Any] = {}
    first: dict[str, Node] = {}
    for key, val in node.value:
        if not isinstance(key, ScalarNode):
            message = "a key must be a plain value"
            diags.append(Diagnostic(codes.YAML_SCHEMA, message, _span(file, key)))
            continue
        if key.value in first:
            diags.append(Diagnostic(
                codes.YAML_SCHEMA, f'duplicate key "{key.value}"', _span(file, key),
                f"first given at line {first[key.value].start_mark.line + 1}",
            ))  # fmt: skip
        first.setdefault(key.value, key)
        out[key.value] = _plain(val, file, diags)
    return out


def _schema_errors(instance: Any, root: Node, file: str) -> Iterator[Diagnostic]:
    for err in _validator().iter_errors(instance):
        path = list(err.absolute_path)
        key, node = _locate(root, path)
        where = _where(path)
        if err.validator == "additionalProperties":
            known = list(err.schema.get("properties", {})) if isinstance(err.schema, dict) else []
            for k, _ in node.value:
                if isinstance(k, ScalarNode) and k.value not in known:
                    hint = did_you_mean(k.value, known) or f"allowed here: {', '.join(known)}"
                    at = f"in {where}" if path else "at the top level"
                    yield Diagnostic(
                        codes.YAML_SCHEMA, f'unknown key "{k.value}" {at}', _span(file, k), hint
                    )
        elif err.validator == "required":
            for name in err.validator_value:
                if name not in err.instance:
                    message = f'{where} needs "{name}"'
                    yield Diagnostic(codes.YAML_SCHEMA, message, _span(file, key or node))
        elif err.validator == "not":  # a key the other keys rule out (then/else of the schema)
            why = err.schema.get("description") if isinstance(err.schema, dict) else None
            message = f'"{path[-1]}" is not allowed in {_where(path[:-1])}'
            yield Diagnostic(codes.YAML_SCHEMA, message, _span(file, key or node), why)
        elif err.validator == "type":
            expected = _expected(err.validator_value)
            message = f"{_label(path)} must be {expected}, found {_found(node)}"
            hint = None
            if node.tag == _BOOL:
                hint = f'YAML reads {node.value} as a boolean; write "{node.value}" in quotes'
            yield Diagnostic(codes.YAML_SCHEMA, message, _span(file, node), hint)
        else:
            yield Diagnostic(codes.YAML_SCHEMA, _message(err, path, node), _span(file, node))


def _message(err: ValidationError, path: list[str | int], node: Node) -> str:
    count = len(node.value) if isinstance(node, SequenceNode) else 0
    if err.validator == "minItems":
        return f"{_label(path)} needs at least {err.validator_value} items, found {count}"
    if err.validator == "maxItems":
        return f"{_label(path)} takes at most {err.validator_value} items, found {count}"
    return f"{_label(path)}: {err.message}"


def _locate(root: Node, path: Sequence[str | int]) -> tuple[Node | None, Node]:
    """The node at a schema error's path, and the key that holds it (None for list items)."""
    key: Node | None = None
    node = root
    for step in path:
        if isinstance(node, SequenceNode) and isinstance(step, int):
            key, node = None, node.value[step]
        elif isinstance(node, MappingNode):
            # the last of duplicate keys, as in the data the schema saw
            key, node = next(
                ((k, v) for k, v in reversed(node.value) if k.value == step), (key, node)
            )
    return key, node


def _where(path: Sequence[str | int]) -> str:
    """A path as it reads in .herc: `service shop expose #1`."""
    words = " ".join(f"#{s + 1}" if isinstance(s, int) else s for s in path)
    return words or "the top level"


def _label(path: Sequence[str | int]) -> str:
    if not path:
        return "the document"
    if isinstance(path[-1], int):
        return _where(path)
    return f'"{path[-1]}"' + (f" in {_where(path[:-1])}" if len(path) > 1 else "")


def _expected(types: str | list[str]) -> str:
    names = [types] if isinstance(types, str) else list(types)
    if "string" in names and "integer" in names:
        names = ["scalar", *(n for n in names if n not in ("string", "integer"))]
    return " or ".join(_TYPE_WORDS.get(n, n) for n in names)


def _found(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if node.tag == _BOOL:
        return f"the boolean {node.value}"
    return f"the number {node.value}" if node.tag == _INT else f'"{node.value}"'


# ---------------------------------------------------------------- positions


def _end(node: Node) -> Mark:
    # A block collection ends where the next token starts, often lines later:
    # its last item is where it really ends.
    if isinstance(node, CollectionNode) and not node.flow_style and node.value:
        last = node.value[-1]
        return _end(last[1] if isinstance(node, MappingNode) else last)
    mark: Mark = node.end_mark
    return mark


def _span(file: str, node: Node) -> Span:
    return _span_of_marks(file, node.start_mark, _end(node))


def _span_of_marks(file: str, start: Mark, end: Mark) -> Span:
    return Span(file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)


def _truth(node: Node) -> bool:
    """A YAML 1.1 boolean: true/yes/on or false/no/off, in any case."""
    return SafeConstructor.bool_values.get(str(node.value).lower(), False)


def _items(node: Node) -> list[Node]:
    """A sequence's items, or a lone scalar as one item."""
    return list(node.value) if isinstance(node, SequenceNode) else [node]


def _fields(node: Node) -> dict[str, tuple[Node, Node]]:
    return {str(k.value): (k, v) for k, v in node.value}


# ---------------------------------------------------------------- conversion


class _Builder:
    """Validated YAML nodes -> the Stmt tree parser.py builds for the same spec."""

    def __init__(self, file: str) -> None:
        self.file = file

    def span(self, node: Node) -> Span:
        return _span(self.file, node)

    def scalar(self, node: Node, text: str | None = None) -> Value:
        return Value("scalar", str(node.value) if text is None else text, self.span(node))

    def value(self, node: Node) -> Value:
        """A scalar, or a sequence as a comma list; a YAML 1.1 boolean reads as on/off."""
        if isinstance(node, SequenceNode):
            return Value("list", "", self.span(node), tuple(self.value(i) for i in node.value))
        if node.tag == _BOOL:
            return self.scalar(node, "on" if _truth(node) else "off")
        return self.scalar(node)

    def stmt(
        self, keyword: str, at: Node, args: tuple[Value, ...], body: Node,
        block: tuple[Stmt, ...] | None = None,
    ) -> Stmt:  # fmt: skip
        return Stmt(keyword, self.span(at), args, block, _end(body).line + 1, origin="yaml")

    def top(self, root: MappingNode) -> Iterator[Stmt]:
        for key, val in root.value:
            kw = str(key.value)
            if kw == "include":
                for item in _items(val):
                    path = Value("string", str(item.value), self.span(item))
                    yield self.stmt(kw, key, (path,), item)
            elif kw == "link":
                yield from (self.link(item) for item in val.value)
            elif kw in ("dataplane", "monitor"):
                yield self.stmt(kw, key, (), val, self.block(val, kw))
            else:
                yield from self.named(kw, val)

    def named(self, keyword: str, node: Node) -> Iterator[Stmt]:
        """`node: {alpha: {...}}` -> `node alpha { ... }`, at the name."""
        for name, body in node.value:
            yield self.stmt(keyword, name, (self.scalar(name),), body, self.block(body, keyword))

    def block(self, node: Node, owner: str) -> tuple[Stmt, ...]:
        out: list[Stmt] = []
        for key, val in node.value:
            if owner == "enterprise":  # each key is a kind of named block
                out.extend(self.named(str(key.value), val))
            elif owner == "monitor":  # netflow is a block without a name
                out.append(self.stmt(str(key.value), key, (), val, self.block(val, key.value)))
            else:
                out.extend(self.option(key, val))
        return tuple(out)

    def option(self, key: Node, val: Node) -> Iterator[Stmt]:
        kw = str(key.value)
        if kw == "expose":
            yield from (self.expose(item) for item in val.value)
        elif kw == "health":
            yield self.health(key, val)
        elif kw == "auth":
            yield self.auth(key, val)
        elif kw == "subnet":  # repeated in .herc: one statement per subnet
            for item in _items(val):
                yield self.stmt(kw, key, (self.scalar(item),), item)
        elif kw in _FLAGS:
            if _truth(val):
                yield self.stmt(kw, key, (), val)
        else:
            yield self.stmt(kw, key, (self.value(val),), val)

    def link(self, item: Node) -> Stmt:
        """`{between: [a, b], cost: 5}` -> `link a b { cost 5 }`."""
        ends: tuple[Value, ...] = ()
        block: list[Stmt] = []
        for key, val in item.value:
            if key.value == "between":
                ends = tuple(self.scalar(end) for end in val.value)
            else:
                block.extend(self.option(key, val))
        return self.stmt("link", item, ends, item, tuple(block))

    def expose(self, item: Node) -> Stmt:
        """-> `expose PROTOCOL HOST|PORT via GATEWAY[, ...]`."""
        f = _fields(item)
        target = f["host"] if "host" in f else f["port"]
        via_key, via = f["via"]
        args = (
            self.scalar(f["protocol"][1]),
            self.scalar(target[1]),
            Value("atom", "via", self.span(via_key)),
            self.value(via),
        )
        return self.stmt("expose", item, args, item)

    def health(self, key: Node, node: Node) -> Stmt:
        """-> `health http "/path" every DURATION` or `health tcp every DURATION`."""
        f = _fields(node)
        args = [self.scalar(f["protocol"][1])]
        if "path" in f:
            path = f["path"][1]
            args.append(Value("string", str(path.value), self.span(path)))
        every_key, every = f["every"]
        args += [Value("atom", "every", self.span(every_key)), self.scalar(every)]
        return self.stmt("health", key, tuple(args), node)

    def auth(self, key: Node, node: Node) -> Stmt:
        """`{psk: NAME}` -> `auth psk secret("NAME")`; `{cert: FILE, ca: FILE, key: NAME,
        remote_id: ID}` -> `auth cert "FILE" ca "FILE" key secret("NAME") remote_id "ID"`."""
        f = _fields(node)
        method = "psk" if "psk" in f else "cert"  # the schema allows these two shapes
        method_key, first = f[method]
        args = [self.scalar(method_key), self._auth_value(method, first)]
        for word in ("ca", "key", "remote_id"):
            if word in f:
                word_key, value = f[word]
                args += [Value("atom", word, self.span(word_key)), self._auth_value(word, value)]
        return self.stmt("auth", key, tuple(args), node)

    def _auth_value(self, word: str, node: Node) -> Value:
        """A secret's name as secret("NAME"); a file or an id as a string."""
        text = Value("string", str(node.value), self.span(node))
        if word in ("psk", "key"):
            return Value("call", "secret", self.span(node), (text,))
        return text
