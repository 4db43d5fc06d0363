#!/usr/bin/env python3
"""The loader's layers, checked from the sources (docs/design.md).

Each folder of loader/ is one layer; a file may include headers of its own
layer and of the layers below it, never above. Headers form no cycle. No file
of smtpgate's userspace programs (loader/, control/, demo/) is longer than
MAX_LINES. The build enforces the first rule too (a layer's include path holds
only its own folder and those below); this check names the offending line.

Usage: check_layers.py SOURCE_DIR. Exit 0 when all hold, 1 with one line per
violation otherwise.
"""
import pathlib
import re
import sys

MAX_LINES = 400

# Layer -> the layers it may use (besides itself). Keep in step with
# loader/CMakeLists.txt and the diagram in docs/design.md.
BELOW = {
    "core": [],
    "rules": ["core"],
    "state": ["rules", "core"],
    "kernel": ["rules", "core"],
    "feed": ["state", "rules", "core"],
    "ops": ["kernel", "feed", "state", "rules", "core"],
    "reports": ["ops", "kernel", "feed", "state", "rules", "core"],
    "daemon": ["reports", "ops", "kernel", "feed", "state", "rules", "core"],
    # smtpgatectl: everything but the daemon.
    "control": ["reports", "ops", "kernel", "feed", "state", "rules", "core"],
}
# Headers of bpf/ and which layers may include them.
BPF_HEADERS = {"smtpgate_abi.h": "rules", "smtpgate.skel.h": "kernel"}
ORDER = ["core", "rules", "state", "kernel", "feed", "ops", "reports", "daemon", "control"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main(src: pathlib.Path) -> int:
    loader = src / "loader"
    owner = {}  # header name -> layer
    files = {}  # path -> layer
    for layer in BELOW:
        folder = src / "control" if layer == "control" else loader / layer
        if not folder.is_dir():
            print(f"check_layers: no folder {folder}: keep BELOW in step with loader/")
            return 1
        for f in sorted(folder.iterdir()):
            if f.suffix in (".cpp", ".hpp", ".h"):
                files[f] = layer
                if f.suffix != ".cpp":
                    if f.name in owner:
                        print(f"{f}: header name also in loader/{owner[f.name]}: names must be unique")
                    owner[f.name] = layer
    for f in sorted(loader.iterdir()):
        if f.is_file() and f.suffix in (".cpp", ".hpp", ".h"):
            print(f"{f.relative_to(src)}: a source outside every layer: move it into the folder of its layer")
    problems = 0
    edges = {}
    for f, layer in files.items():
        text = f.read_text()
        rel = f.relative_to(src)
        lines = text.count("\n")
        if lines > MAX_LINES:
            print(f"{rel}: {lines} lines, more than {MAX_LINES}: split it by job")
            problems += 1
        for m in INCLUDE.finditer(text):
            name = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            if name in BPF_HEADERS:
                lowest = BPF_HEADERS[name]
                if ORDER.index(layer) < ORDER.index(lowest):
                    print(f"{rel}:{line}: includes {name}, which only {lowest} and above may use")
                    problems += 1
                continue
            target = owner.get(name)
            if target is None:
                continue  # a system or generated header
            if target != layer and target not in BELOW[layer]:
                print(f"{rel}:{line}: {layer} includes {name} of {target}, a layer above or beside it")
                problems += 1
            if f.suffix != ".cpp":
                edges.setdefault(f.name, set()).add(name)
    # Header cycles (depth-first search).
    state = {}

    def visit(h, path):
        nonlocal problems
        state[h] = 1
        for n in sorted(edges.get(h, ())):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n] if n in path else [h, n]
                print("include cycle: " + " -> ".join(cycle))
                problems += 1
            elif n not in state:
                visit(n, path + [n])
        state[h] = 2

    for h in sorted(edges):
        if h not in state:
            visit(h, [h])
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: check_layers.py SOURCE_DIR")
        sys.exit(2)
    sys.exit(main(pathlib.Path(sys.argv[1])))
