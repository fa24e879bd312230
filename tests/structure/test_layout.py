"""The architecture as DESIGN.md draws it, checked: layers import downwards only, modules stay small,
and the installed wheel puts nothing at the top of site-packages but `hwprof`."""
import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Folder -> its layer; a module may import only from its own layer or lower ones.
LAYERS = {"kernels": 0, "foundation": 0, "measuring": 1, "running": 2, "analysis": 3, "presentation": 4, "top": 5}
FOUNDATION = {"hwprof.version", "hwprof.errors", "hwprof.compat"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    parts[0] = "hwprof" if parts[0] == "profiler" else "hwprof.kernels"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    if module.startswith("hwprof.kernels"):
        return LAYERS["kernels"]
    if module in FOUNDATION:
        return LAYERS["foundation"]
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return LAYERS["top"]          # hwprof, hwprof.__main__: the package API, imports lazily from below


def _sources():
    return sorted(p for d in ("profiler", "kernels") for p in (REPO / d).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.split(".")[0] in ("hwprof", "profiler", "kernels")}


def _resolve(name: str) -> str:
    """`from hwprof.running import efficiency` names a module; `from hwprof.x import func` names x."""
    candidates = [name, name.rsplit(".", 1)[0]]
    for c in candidates:
        rel = c.split(".")[1:]
        if rel[:1] == ["kernels"]:
            base = REPO / "kernels" / Path(*rel[1:]) if rel[1:] else REPO / "kernels"
        else:
            base = REPO / "profiler" / Path(*rel) if rel else REPO / "profiler"
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return c
    return name


def test_layers_import_downwards_only():
    bad = []
    for path in _sources():
        me = _module_name(path)
        for imported in _imports(path):
            if imported.split(".")[0] != "hwprof":
                bad.append(f"{me} imports {imported}: use the hwprof namespace")
                continue
            target = _resolve(imported)
            if _layer(target) > _layer(me):
                bad.append(f"{me} (layer {_layer(me)}) imports {target} (layer {_layer(target)})")
    assert not bad, "\n".join(bad)


def test_tests_import_the_package_by_its_installed_name():
    """`import kernels.attention` from a test found the checkout's folder under another name (a second copy
    of the module, which a monkeypatch of it never reached), and takes the name from Hugging Face's kernels
    package, which transformers imports."""
    bad = [f"{p.relative_to(REPO)} imports {i}" for p in sorted((REPO / "tests").rglob("*.py"))
           for i in _imports(p) if i.split(".")[0] != "hwprof"]
    assert not bad, "\n".join(bad)


def test_kernels_know_nothing_of_meters_and_timers_and_meters_nothing_of_kernels():
    for path in _sources():
        me = _module_name(path)
        imports = {_resolve(i) for i in _imports(path)}
        if me.startswith("hwprof.kernels"):
            assert not [i for i in imports if not i.startswith("hwprof.kernels")], me
        if me.startswith("hwprof.measuring"):
            assert not [i for i in imports if i.startswith("hwprof.kernels")], me


def test_no_module_over_300_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for p in _sources() if (n := len(p.read_text().splitlines())) > 300]
    assert not long, long


@pytest.mark.slow
def test_wheel_installs_only_the_hwprof_namespace(tmp_path):
    """Build the wheel as pip would (no network: the installed setuptools) and list its top level."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("hwprof-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"hwprof"}
    for needed in ("hwprof/kernels/matmul.py", "hwprof/running/runner.py", "hwprof/presets/quick.toml",
                   "hwprof/data/gpu_peaks.toml", "hwprof/measuring/meters/rapl.py"):
        assert needed in names, needed
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hwprof = hwprof.presentation.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
