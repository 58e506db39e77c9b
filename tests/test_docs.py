"""The documentation's examples are tested.

Conventions for fenced code blocks in README.md and docs/*.md:

* ```herc: a complete spec. It must pass `hercc check`, and be in the
  canonical layout of `hercc fmt`.
* ```herc-error: a spec that must fail. Its first line is `# expect: E123`,
  a code that must be among the diagnostics.
* ```yaml whose first line is `# herc.yaml`: a YAML spec (spec.herc.yaml)
  that must pass. With `# herc.yaml expect: E123`, it must fail with E123.
  Other yaml blocks are fragments.
* ```text whose first line is `$ hercc ... spec.herc` (or spec.herc.yaml),
  with no other `$` line: the exact output of that command, run on the last
  spec block above it in the same file. It exits 0 (1 after a failing spec),
  or with N when the block ends with a line `(exit status N)`.
* ```text whose first line is `$ hercc check|route ... examples/FILE ...`,
  with no other `$` line: the exact output of that command, run in the
  repository root on the example file itself.
* A ```herc block right after a `# herc.yaml` block (no block between) is
  the same spec: both must give the same IR.
* Fragments (not whole specs) use ```text or a plain fence.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from hercc import codes, ir
from hercc.cli import main as cli
from hercc.diagnostics import SpecError
from hercc.fmt import format_source
from hercc.parser import parse_text
from hercc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE_TAGS = {"", "text", "sh", "herc", "herc-error", "yaml", "json"}
EXPECT = re.compile(r"# expect: (E\d{3})\Z")
YAML_MARK = "# herc.yaml"
YAML_EXPECT = re.compile(r"# herc\.yaml expect: (E\d{3})\Z")
SPEC_FILES = {"spec.herc": ("herc", "herc-error"), "spec.herc.yaml": ("yaml",)}


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # of the opening fence
    tag: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def first(self) -> str:
        return self.text.split("\n", 1)[0]

    @property
    def is_yaml_spec(self) -> bool:
        return self.tag == "yaml" and self.first.startswith(YAML_MARK)

    @property
    def must_fail(self) -> bool:
        return self.tag == "herc-error" or (self.is_yaml_spec and self.first != YAML_MARK)

    @property
    def is_spec(self) -> bool:
        return self.tag in ("herc", "herc-error") or self.is_yaml_spec


def blocks_of(doc: Path) -> list[Block]:
    found: list[Block] = []
    lines = doc.read_text(encoding="utf-8").split("\n")
    open_at, tag, body = 0, "", []
    for number, line in enumerate(lines, 1):
        if not line.startswith("```"):
            if open_at:
                body.append(line)
            continue
        if open_at:
            assert line == "```", f"{doc}:{number}: a fence closes with ``` alone"
            found.append(Block(doc, open_at, tag, "\n".join(body) + "\n"))
            open_at, body = 0, []
        else:
            open_at, tag = number, line[3:].strip()
    assert not open_at, f"{doc}:{open_at}: fence not closed"
    return found


ALL_BLOCKS = [b for doc in DOCS for b in blocks_of(doc)]


def of_tag(*tags: str) -> list[Block]:
    return [b for b in ALL_BLOCKS if b.tag in tags]


def ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


def spec_file(block: Block) -> str:
    return "spec.herc.yaml" if block.tag == "yaml" else "spec.herc"


def write_spec(tmp_path: Path, block: Block) -> str:
    path = tmp_path / spec_file(block)
    path.write_text(block.text, encoding="utf-8")
    return str(path)


def diagnostic_codes(tmp_path: Path, block: Block) -> list[str]:
    with pytest.raises(SpecError) as info:
        compile_spec(write_spec(tmp_path, block), use_lock=False)
    return [d.code for d in info.value.diagnostics]


# ---------------------------------------------------------------- the blocks


def test_the_docs_exist_and_have_examples() -> None:
    names = {d.relative_to(ROOT).as_posix() for d in DOCS}
    assert {
        "README.md",
        "docs/language.md",
        "docs/commands.md",
        "docs/diagnostics.md",
        "docs/ir.md",
        "docs/routing.md",
        "docs/outputs.md",
    } <= names
    assert len(of_tag("herc")) >= 10
    errors = [c for c in codes.ALL if c.startswith("E")]
    assert len(of_tag("herc-error")) >= len(errors) - 1  # E130 is a yaml block
    assert any(b.is_yaml_spec for b in ALL_BLOCKS)


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=ids(ALL_BLOCKS))
def test_fence_tag_is_known(block: Block) -> None:
    assert block.tag in FENCE_TAGS, f"{block.where}: unknown fence tag {block.tag!r}"


@pytest.mark.parametrize("block", of_tag("herc"), ids=ids(of_tag("herc")))
def test_herc_block_compiles(tmp_path: Path, block: Block) -> None:
    try:
        compile_spec(write_spec(tmp_path, block), use_lock=False)
    except SpecError as err:
        found = "\n".join(f"{d.span}: {d.code} {d.message}" for d in err.diagnostics)
        pytest.fail(f"{block.where}: the example does not compile:\n{found}")


@pytest.mark.parametrize("block", of_tag("herc"), ids=ids(of_tag("herc")))
def test_herc_block_is_canonical(block: Block) -> None:
    assert format_source(parse_text(block.text, block.where)) == block.text, (
        f"{block.where}: not in `hercc fmt` layout"
    )


@pytest.mark.parametrize("block", of_tag("herc-error"), ids=ids(of_tag("herc-error")))
def test_herc_error_block_fails_with_its_code(tmp_path: Path, block: Block) -> None:
    m = EXPECT.match(block.first)
    assert m, f"{block.where}: a herc-error block starts with `# expect: E123`"
    assert m.group(1) in codes.ALL, f"{block.where}: {m.group(1)} is not a code"
    assert m.group(1) in diagnostic_codes(tmp_path, block), block.where


YAML_SPECS = [b for b in ALL_BLOCKS if b.is_yaml_spec]


@pytest.mark.parametrize("block", YAML_SPECS, ids=ids(YAML_SPECS))
def test_yaml_block(tmp_path: Path, block: Block) -> None:
    if block.first == YAML_MARK:
        compile_spec(write_spec(tmp_path, block), use_lock=False)
        return
    m = YAML_EXPECT.match(block.first)
    assert m, f"{block.where}: write `# herc.yaml` or `# herc.yaml expect: E123`"
    assert m.group(1) in diagnostic_codes(tmp_path, block), block.where


def _pairs() -> list[tuple[Block, Block]]:
    out = []
    for prev, nxt in itertools.pairwise(ALL_BLOCKS):
        if prev.doc == nxt.doc and prev.is_yaml_spec and nxt.tag == "herc":
            out.append((prev, nxt))
    return out


@pytest.mark.parametrize(("yaml_block", "herc_block"), _pairs(), ids=[h.where for _, h in _pairs()])
def test_yaml_and_herc_forms_give_the_same_ir(
    tmp_path: Path, yaml_block: Block, herc_block: Block
) -> None:
    assert yaml_block.first == YAML_MARK
    from_yaml = compile_spec(write_spec(tmp_path, yaml_block), use_lock=False)
    from_herc = compile_spec(write_spec(tmp_path, herc_block), use_lock=False)
    assert ir.to_data(from_yaml.ir) == ir.to_data(from_herc.ir)


# ---------------------------------------------------------------- outputs


def _command_of(block: Block) -> list[str] | None:
    """The hercc arguments of a text block holding one `$ hercc ...` and its output."""
    lines = block.text.rstrip("\n").split("\n")
    if block.tag != "text" or not lines[0].startswith("$ hercc "):
        return None
    if any(line.startswith("$ ") for line in lines[1:]):
        return None
    return shlex.split(lines[0][2:])[1:]


def _outputs() -> list[tuple[Block, Block, list[str]]]:
    """(spec block, output block, argv) for every output block that names a spec file."""
    out = []
    for doc in DOCS:
        last_spec: Block | None = None
        for block in blocks_of(doc):
            if block.is_spec:
                last_spec = block
                continue
            argv = _command_of(block)
            if argv and argv[-1] in SPEC_FILES:
                assert last_spec is not None, f"{block.where}: no spec block above"
                out.append((last_spec, block, argv))
    return out


OUTPUTS = _outputs()


@pytest.mark.parametrize(("spec", "output", "argv"), OUTPUTS, ids=[o.where for _, o, _ in OUTPUTS])
def test_output_block_is_the_real_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    spec: Block,
    output: Block,
    argv: list[str],
) -> None:
    assert spec.tag in SPEC_FILES[argv[-1]], (
        f"{output.where}: runs {argv[-1]} on a {spec.tag} block"
    )
    write_spec(tmp_path, spec)
    monkeypatch.chdir(tmp_path)
    status = cli.main(argv)
    captured = capsys.readouterr()
    expected, expected_status = _expected_output(output, 1 if spec.must_fail else 0)
    assert captured.out + captured.err == expected, output.where
    assert status == expected_status, output.where


EXIT_STATUS = re.compile(r"\(exit status (\d+)\)\n\Z")


def _expected_output(output: Block, status: int) -> tuple[str, int]:
    """The text after the `$` line, and the exit status (`(exit status N)`, or `status`)."""
    text = output.text.split("\n", 1)[1]
    m = EXIT_STATUS.search(text)
    if m is None:
        return text, status
    return text[: m.start()], int(m.group(1))


READ_ONLY = ("check", "route")


def _example_outputs() -> list[tuple[Block, list[str]]]:
    """(output block, argv) for read-only commands run on a file of examples/."""
    out = []
    for block in ALL_BLOCKS:
        argv = _command_of(block)
        if argv and argv[0] in READ_ONLY and any(a.startswith("examples/") for a in argv):
            out.append((block, argv))
    return out


EXAMPLE_OUTPUTS = _example_outputs()


@pytest.mark.parametrize(
    ("output", "argv"), EXAMPLE_OUTPUTS, ids=[o.where for o, _ in EXAMPLE_OUTPUTS]
)
def test_example_output_block_is_the_real_output(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    output: Block,
    argv: list[str],
) -> None:
    monkeypatch.chdir(ROOT)
    status = cli.main(argv)
    captured = capsys.readouterr()
    assert captured.out + captured.err == output.text.split("\n", 1)[1], output.where
    assert status == 0, output.where


def test_diagnostics_outputs_are_checked() -> None:
    """Every failing example of diagnostics.md shows its real output."""
    checked = {spec.where for spec, _, _ in OUTPUTS}
    doc = ROOT / "docs" / "diagnostics.md"
    for block in blocks_of(doc):
        if block.is_spec:
            assert block.where in checked, f"{block.where}: no output block follows"


# ---------------------------------------------------------------- coverage


def test_every_code_is_documented() -> None:
    text = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^### ([EW]\d{3})\b", text, re.M))
    assert set(codes.ALL) <= headings, sorted(set(codes.ALL) - headings)
    expected = {m.group(1) for b in of_tag("herc-error") if (m := EXPECT.match(b.first))}
    expected |= {m.group(1) for b in YAML_SPECS if (m := YAML_EXPECT.match(b.first))}
    # A warning does not fail: its example is a valid spec and the output that shows it.
    expected |= set(re.findall(r": warning\[(W\d{3})\]: ", text))
    assert set(codes.ALL) <= expected, sorted(set(codes.ALL) - expected)


def _commands() -> list[list[str]]:
    """Every command of the real parser, sub-commands (`keys init`) included."""

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> list[list[str]]:
        found: list[list[str]] = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append([*prefix, name])
                    found.extend(walk(sub, [*prefix, name]))
        return found

    return walk(cli.parser(), [])


COMMANDS = _commands()


def test_the_parser_has_commands() -> None:
    assert ["check"] in COMMANDS and ["keys", "init"] in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_every_command_is_documented(command: list[str]) -> None:
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert re.search(rf"^## {command[0]}$", text, re.M), command[0]
    assert f"hercc {' '.join(command)}" in text


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_documented_commands_exist(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    assert cli.main([*command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: hercc {' '.join(command)}")


def test_every_ir_key_is_documented() -> None:
    schema = json.loads((ROOT / "schemas" / "ir.schema.json").read_text(encoding="utf-8"))
    text = (ROOT / "docs" / "ir.md").read_text(encoding="utf-8")
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    missing = sorted(k for k in keys if not re.search(f'[`"]{k}[`"]', text))
    assert not missing, f"docs/ir.md does not mention: {missing}"


# ---------------------------------------------------------------- links


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    text = re.sub(r"^```.*?^```$", "", doc.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_links_resolve(doc: Path) -> None:
    text = re.sub(r"^```.*?^```$", "", doc.read_text(encoding="utf-8"), flags=re.M | re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.exists(), f"{doc.name}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{doc.name}: no heading for {target}"


def test_graph_documents_the_file_names_it_draws() -> None:
    from hercc.cli.graph import SUFFIXES

    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    section = text.split("\n## graph\n", 1)[1].split("\n## ", 1)[0]
    [paragraph] = [p for p in section.split("\n\n") if p.startswith("Without `--format`")]
    assert set(re.findall(r"`(\.\w+)`", paragraph)) == set(SUFFIXES)


# ---------------------------------------------------------------- build outputs


@pytest.fixture(scope="module")
def quickstart_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """outputs.md's build: examples/quickstart.herc with keys."""
    root = tmp_path_factory.mktemp("quickstart")
    spec = root / "quickstart.herc"
    spec.write_bytes((ROOT / "examples" / "quickstart.herc").read_bytes())
    assert cli.main(["keys", "init", "--keys", str(root / "keys"), str(spec)]) == 0
    assert (
        cli.main(["build", str(spec), "--keys", str(root / "keys"), "-o", str(root / "out")]) == 0
    )
    assert cli.main(["build", str(spec), "-o", str(root / "without-keys")]) == 0
    return root / "out"


def _section(doc: str, heading: str) -> str:
    """The prose of a `## heading` section of a doc, without its code blocks."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    body = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.sub(r"^```.*?^```$", "", body, flags=re.M | re.S)


def _first_column(table_text: str) -> set[str]:
    return {
        k
        for row in re.findall(r"^\| (.+?) \|", table_text, re.M)
        for k in re.findall(r"`(\w+)`", row)
    }


def _layout(data: dict[str, object]) -> tuple[set[str], set[str], set[str]]:
    """The keys of a node.json: top level, per network, per peer."""
    networks = list(data["networks"].values())  # type: ignore[attr-defined]
    peers = [p for n in networks for p in n["peers"]]
    return set(data), {k for n in networks for k in n}, {k for p in peers for k in p}


def test_outputs_md_lists_every_key_of_node_json(quickstart_build: Path) -> None:
    home = json.loads((quickstart_build / "nodes/home/node.json").read_text(encoding="utf-8"))
    top, per_network, per_peer = _layout(home)
    section = _section("outputs.md", "nodes/\\<node\\>/node.json")
    tables = section.split("Per network:", 1)
    assert _first_column(tables[0]) == top
    prose, peer_table = tables[1].split("\n\n", 1)
    assert set(re.findall(r"`(\w+)`", prose)) == per_network
    assert _first_column(peer_table) == per_peer


def test_commands_md_lists_every_key_of_node_json(quickstart_build: Path) -> None:
    home = json.loads((quickstart_build / "nodes/home/node.json").read_text(encoding="utf-8"))
    top, per_network, _ = _layout(home)
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    [row] = [r for r in text.splitlines() if r.startswith("| `nodes/<node>/node.json` |")]
    assert set(re.findall(r"`(\w+)`", row.split("|")[2])) == top | per_network


def _shown_node_json() -> list[tuple[Block, str, dict[str, object]]]:
    """(block, node, JSON) for every `$ cat out/nodes/NODE/node.json` in the docs."""
    found = []
    for block in ALL_BLOCKS:
        for m in re.finditer(
            r"^\$ cat out/nodes/(\w+)/node\.json\n(.*?)(?=^\$ |\Z)", block.text, re.M | re.S
        ):
            found.append((block, m.group(1), json.loads(m.group(2))))
    return found


SHOWN_NODE_JSON = _shown_node_json()


def _without_keys(data: object) -> object:
    """Keys differ on every run: every public key becomes KEY."""
    if isinstance(data, dict):
        return {k: ("KEY" if k == "pubkey" and v else _without_keys(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_without_keys(v) for v in data]
    return data


@pytest.mark.parametrize(
    ("block", "node", "shown"), SHOWN_NODE_JSON, ids=[b.where for b, _, _ in SHOWN_NODE_JSON]
)
def test_shown_node_json_is_the_real_one(
    quickstart_build: Path, block: Block, node: str, shown: dict[str, object]
) -> None:
    """README (no keys) and outputs.md (keys) show a node.json of the quickstart's build."""
    build = quickstart_build if shown["pubkey"] else quickstart_build.parent / "without-keys"
    real = json.loads((build / "nodes" / node / "node.json").read_text(encoding="utf-8"))
    assert _without_keys(shown) == _without_keys(real), block.where


def test_the_docs_show_node_json() -> None:
    assert {b.doc.name for b, _, _ in SHOWN_NODE_JSON} == {"README.md", "outputs.md"}


# the files of each `## PATH` section of outputs.md, as globs over a build
OUTPUT_SECTIONS = {
    "ir.json": ["ir.json"],
    "manifest.json": ["manifest.json"],
    "nodes/\\<node\\>/node.json": ["nodes/*/node.json"],
    "nodes/\\<node\\>/wireguard/\\<network\\>.conf": ["nodes/*/wireguard/*.conf"],
    "nodes/\\<node\\>/wg-quick/\\<network\\>.conf": ["nodes/*/wg-quick/*.conf"],
    "nodes/\\<node\\>/networkd/50-hercules-\\<network\\>.netdev and .network": [
        "nodes/*/networkd/*.netdev",
        "nodes/*/networkd/*.network",
    ],
    "nodes/\\<node\\>/netplan/\\<network\\>.yaml": ["nodes/*/netplan/*.yaml"],
    "secrets": ["nodes/*/secrets/**/*.key", "nodes/*/secrets/**/*.psk"],
}


def test_every_output_has_a_section() -> None:
    text = (ROOT / "docs" / "outputs.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert set(OUTPUT_SECTIONS) <= set(headings)


@pytest.mark.parametrize("heading", OUTPUT_SECTIONS, ids=list(OUTPUT_SECTIONS))
def test_outputs_md_gives_each_file_its_real_mode(quickstart_build: Path, heading: str) -> None:
    """A section that says `mode 0NNN` has files of that mode; one that says none, 0644."""
    modes = set(re.findall(r"mode (0[0-7]{3})", _section("outputs.md", heading)))
    assert len(modes) <= 1, f"{heading}: {modes}"
    documented = int(modes.pop(), 8) if modes else 0o644
    files = [p for pattern in OUTPUT_SECTIONS[heading] for p in quickstart_build.glob(pattern)]
    assert files, heading
    real = {
        str(p.relative_to(quickstart_build)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
    }
    assert set(real.values()) == {oct(documented)}, real


# ---------------------------------------------------------------- examples

EXAMPLE_SPECS = sorted((ROOT / "examples").glob("*.herc"))


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLE_SPECS}
    assert {"quickstart.herc", "reference.herc"} <= names


@pytest.mark.parametrize("example", EXAMPLE_SPECS, ids=[p.name for p in EXAMPLE_SPECS])
def test_shipped_example_passes_fmt_check(
    capsys: pytest.CaptureFixture[str], example: Path
) -> None:
    """What a new user runs first on the examples must agree with what hercc itself writes."""
    assert cli.main(["fmt", "--check", str(example)]) == 0, capsys.readouterr().err


def test_every_exit_code_is_documented() -> None:
    from hercc.cli.exitcode import ExitCode

    section = _section("commands.md", "Exit codes")
    missing = [code for code in ExitCode if not re.search(rf"\b{code.value}\b", section)]
    assert not missing


def _synopsis() -> dict[str, str]:
    """The synopsis block at the top of docs/commands.md: command path -> its lines, joined."""
    text = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    out: dict[str, str] = {}
    last = ""
    for line in block.splitlines():
        if line.startswith("hercc "):
            words = line.split()[1:]
            path = [w for w in words[:2] if re.fullmatch(r"[a-z]+", w)]
            if not path:  # hercc --version, --help
                last = ""
                continue
            # `lab`, `keys`, `flows` and `dataplane` have sub-commands: their path is two words
            last = (
                " ".join(path[:2]) if path[0] in ("lab", "keys", "flows", "dataplane") else path[0]
            )
            out[last] = out.get(last, "") + " " + line
        elif line.startswith(" ") and last:
            out[last] += " " + line
    return out


def _commands() -> dict[str, list[list[str]]]:
    """Every command of the real parser: its path -> each option's spellings (no --help)."""
    import argparse

    from hercc.cli import main as cli_main

    found: dict[str, list[list[str]]] = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, [*path, name])
        if path and not subs:
            found[" ".join(path)] = [
                list(a.option_strings)
                for a in parser._actions
                if a.option_strings and "--help" not in a.option_strings
            ]

    walk(cli_main.parser(), [])
    return found


def test_the_synopsis_names_every_command_and_option() -> None:
    synopsis, commands = _synopsis(), _commands()
    assert set(synopsis) == set(commands)
    for path, options in commands.items():
        for spellings in options:
            assert any(
                re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", synopsis[path]) for s in spellings
            ), f"hercc {path}: {spellings[-1]} is not in the synopsis of docs/commands.md"
