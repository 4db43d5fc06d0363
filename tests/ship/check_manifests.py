#!/usr/bin/env python3
"""The bpfman manifests: parse, check kinds and required fields, and check
them against what the build made: the XdpProgram names the object's XDP
function, the DaemonSet's CSI volume exposes exactly the object's maps at the
--pin-dir it gives smtpgated --no-attach, and the ConfigMap's smtpgate.toml
passes smtpgated --check-config.

Usage: check_manifests.py MANIFEST_DIR BPF_OBJECT SMTPGATED
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

import yaml

problems = []


def need(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def get(doc, path, where):
    node = doc
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            problems.append(f"{where}: missing {path}")
            return None
        node = node[key]
    return node


def elf_symbols(obj):
    """(XDP functions, maps) defined in a BPF object, from its ELF symbols."""
    sections = {}
    for line in subprocess.run(["readelf", "-SW", obj], capture_output=True, text=True, check=True).stdout.splitlines():
        m = re.match(r"\s*\[\s*(\d+)\]\s+(\S+)", line)
        if m:
            sections[m.group(1)] = m.group(2)
    funcs, maps = set(), set()
    for line in subprocess.run(["readelf", "-sW", obj], capture_output=True, text=True, check=True).stdout.splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].rstrip(":").isdigit():
            continue
        kind, ndx, name = f[3], f[6], f[7]
        section = sections.get(ndx, "")
        if kind == "FUNC" and section.startswith("xdp"):
            funcs.add(name)
        elif kind == "OBJECT" and section == ".maps":
            maps.add(name)
    return funcs, maps


def main():
    mdir, obj, smtpgated = sys.argv[1:4]
    funcs, maps = elf_symbols(obj)
    need(funcs and maps, f"{obj}: no XDP function or no maps found")
    docs = []
    for path in sorted(glob.glob(os.path.join(mdir, "*.yaml"))):
        with open(path) as f:
            for d in yaml.safe_load_all(f):
                if d is not None:
                    docs.append((os.path.basename(path), d))
    by_kind = {}
    for name, d in docs:
        for field in ("apiVersion", "kind", "metadata"):
            need(field in d, f"{name}: a document without {field}")
        need("name" in d.get("metadata", {}), f"{name}: {d.get('kind')} without metadata.name")
        by_kind.setdefault(d.get("kind"), []).append((name, d))
    need(set(by_kind) == {"XdpProgram", "Namespace", "ConfigMap", "DaemonSet"},
         f"kinds {sorted(by_kind)}: want XdpProgram, Namespace, ConfigMap, DaemonSet")
    if problems:
        return

    (xname, xdp), = by_kind["XdpProgram"]
    need(xdp["apiVersion"] == "bpfman.io/v1alpha1", f"{xname}: apiVersion {xdp['apiVersion']}")
    fn = get(xdp, "spec.bpffunctionname", xname)
    need(fn in funcs, f"{xname}: bpffunctionname {fn} is not an XDP function of {obj} ({sorted(funcs)})")
    get(xdp, "spec.nodeselector", xname)
    ifs = get(xdp, "spec.interfaceselector", xname)
    need(isinstance(ifs, dict) and (ifs.get("interfaces") or ifs.get("primarynodeinterface")),
         f"{xname}: interfaceselector names no interface")
    prio = get(xdp, "spec.priority", xname)
    need(isinstance(prio, int) and 0 <= prio <= 1000, f"{xname}: priority {prio} not in 0..1000")
    get(xdp, "spec.bytecode.image.url", xname)

    (dname, ds), = by_kind["DaemonSet"]
    ns = {d["metadata"]["name"] for _, d in by_kind["Namespace"]}
    need(ds["metadata"].get("namespace") in ns, f"{dname}: DaemonSet namespace is not the Namespace created")
    sel = get(ds, "spec.selector.matchLabels", dname) or {}
    labels = get(ds, "spec.template.metadata.labels", dname) or {}
    need(sel and all(labels.get(k) == v for k, v in sel.items()), f"{dname}: selector does not match the pod labels")
    pod = get(ds, "spec.template.spec", dname) or {}
    containers = pod.get("containers", [])
    need(len(containers) == 1, f"{dname}: want one container")
    c = containers[0]
    argv = c.get("command", []) + c.get("args", [])
    need("--no-attach" in argv, f"{dname}: smtpgated runs without --no-attach (it would load and attach itself)")
    pin_dir = argv[argv.index("--pin-dir") + 1] if "--pin-dir" in argv else None
    need(pin_dir, f"{dname}: no --pin-dir")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    need(set(mounts.values()) <= set(volumes), f"{dname}: a volumeMount names no volume")
    vol = volumes.get(mounts.get(pin_dir, ""), {})
    csi = vol.get("csi", {})
    need(csi.get("driver") == "csi.bpfman.io", f"{dname}: --pin-dir {pin_dir} is not a bpfman CSI volume")
    attrs = csi.get("volumeAttributes", {})
    need(attrs.get("csi.bpfman.io/program") == xdp["metadata"]["name"],
         f"{dname}: the CSI volume names program {attrs.get('csi.bpfman.io/program')}, not {xdp['metadata']['name']}")
    exposed = set(filter(None, attrs.get("csi.bpfman.io/maps", "").split(",")))
    need(exposed == maps, f"{dname}: the CSI volume exposes {sorted(exposed)}; the object defines {sorted(maps)}")

    (cname, cm), = by_kind["ConfigMap"]
    toml = (cm.get("data") or {}).get("smtpgate.toml")
    need(toml, f"{cname}: no data \"smtpgate.toml\"")
    cfg_mounts = [p for p, n in mounts.items() if volumes.get(n, {}).get("configMap", {}).get("name") == cm["metadata"]["name"]]
    need(cfg_mounts and "--config" in argv and argv[argv.index("--config") + 1] == cfg_mounts[0] + "/smtpgate.toml",
         f"{dname}: --config is not the ConfigMap's smtpgate.toml")
    if toml:
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
            f.write(toml)
            f.flush()
            r = subprocess.run([smtpgated, "--check-config", "-c", f.name], capture_output=True, text=True)
            need(r.returncode == 0, f"{cname}: smtpgate.toml is refused: {r.stderr.strip()}")
            # A host-network pod's metrics on any address but loopback are
            # open to every network the node is on.
            m = re.search(r'^listen\s*=\s*"([^"]*)"', toml, re.M)
            need(pod.get("hostNetwork") is not True or m is None or m.group(1) == "" or
                 m.group(1).startswith(("127.", "[::1]:")),
                 f"{cname}: metrics listen {m.group(1) if m else ''} on the host network is not loopback")
            m = re.search(r'^pin_dir\s*=\s*"([^"]*)"', toml, re.M)
            need(m is None or m.group(1) == pin_dir, f"{cname}: pin_dir differs from --pin-dir {pin_dir}")


if __name__ == "__main__":
    main()
    for p in problems:
        print(p)
    print(f"{len(problems)} problems")
    sys.exit(1 if problems else 0)
