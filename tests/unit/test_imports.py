"""raycollect's imports, read from the source with `ast` (nothing is imported): no module
imports itself back through others, and what runs at run time needs only what a user
installed. Every import counts, the ones inside functions too: a lazy import is still an
edge (it runs the first time the function does)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "raycollect"

# Not dependencies of raycollect's runtime: test and measuring tools (raycollect/testing/)
# use them; the queue actor's process should not even load PIL.
TEST_ONLY = {"psutil", "pybullet", "pybullet_data"}
# ...but for a feature that is pybullet: rc.physics.drop settles objects with it (installed
# with raycollect[reference]), and imports it when called.
FEATURES = {"raycollect.physics": {"pybullet"}}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every module `name` imports: raycollect's own by their full names, others by their
    top-level name."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            # `from . import x` imports the module x when there is one.
            subs = [f"{stem}.{a.name}" for a in node.names if f"{stem}.{a.name}" in MODULES]
            out.update(subs or [stem])
    resolved = set()
    for mod in out:
        if mod.split(".")[0] != "raycollect":
            resolved.add(mod.split(".")[0])
            continue
        while mod not in MODULES:  # `raycollect.x.y` where y is a name in module x
            mod = mod.rpartition(".")[0]
        if mod != name:
            resolved.add(mod)
    return resolved


GRAPH = {name: {m for m in _imports(name) if m.startswith("raycollect")} for name in MODULES}
THIRD_PARTY = {name: {m for m in _imports(name) if not m.startswith("raycollect")}
               for name in MODULES}


def _cycle_through(start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in sorted(GRAPH[node] - {"raycollect"}):  # the package root imports everything
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def closure(*roots: str) -> set[str]:
    """The modules `roots` import, directly or not (the public surface raycollect/__init__.py
    is left out unless it is a root: importing a submodule runs it, but it is not what the
    submodule needs)."""
    out, todo = set(), list(roots)
    while todo:
        mod = todo.pop()
        if mod in out:
            continue
        out.add(mod)
        todo += [m for m in GRAPH[mod] if m != "raycollect"]
        parent = mod.rpartition(".")[0]
        if parent and parent != "raycollect":
            todo.append(parent)  # a subpackage's __init__ runs before its modules
    return out


def third_party(modules: set[str]) -> dict[str, set[str]]:
    found = {m: THIRD_PARTY[m] & TEST_ONLY - FEATURES.get(m, set()) for m in modules}
    return {m: s for m, s in found.items() if s}


def test_no_module_imports_itself_back():
    cycles = [c for c in map(_cycle_through, sorted(MODULES)) if c]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_queue_actor_imports_no_pil_and_no_test_tool():
    mods = closure("raycollect.queue")
    heavy = {m: THIRD_PARTY[m] & (TEST_ONLY | {"PIL"}) for m in mods}
    assert not {m: s for m, s in heavy.items() if s}, heavy


def test_what_runs_at_run_time_imports_no_test_tool():
    runtime = closure("raycollect", "raycollect.cli", "raycollect.driver",
                      "raycollect.render.worker")
    assert not any(m.startswith("raycollect.testing") for m in runtime), sorted(
        m for m in runtime if m.startswith("raycollect.testing"))
    assert not third_party(runtime), third_party(runtime)


def _loaded_after(code: str) -> set[str]:
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    return set(out.split())


def test_the_queue_actor_and_browser_hosts_load_no_vuer_numpy_or_pil():
    """What their processes really load (the package's public surface is imported lazily):
    each Ray actor's process imports the package first, and these two need none of it."""
    loaded = _loaded_after("import raycollect.queue, raycollect.browser_hosts")
    assert not loaded & {"vuer", "numpy", "PIL"}, sorted(loaded & {"vuer", "numpy", "PIL"})


def test_the_public_names_are_what_they_say_after_any_import():
    """`rc.render`, `rc.flow`, `rc.mjcf` are functions even when their namesake subpackages
    were imported first (as in a worker's process), and every name in __all__ resolves."""
    code = ("import raycollect.render.worker, raycollect.flow, raycollect.mjcf.world\n"
            "import raycollect as rc\n"
            "assert all(callable(getattr(rc, n)) for n in ('render', 'flow', 'mjcf')), "
            "(rc.render, rc.flow, rc.mjcf)\n"
            "[getattr(rc, n) for n in rc.__all__]\n")
    _loaded_after(code)


def test_a_scene_pickled_by_value_takes_the_package_by_reference():
    """A scene function in the user's own module (pickled by value to the workers) that uses
    `rc.`: the package itself goes by reference, as any module does."""
    code = ("import pickle, sys, types\n"
            "from ray import cloudpickle\n"
            "m = types.ModuleType('user_scene'); sys.modules['user_scene'] = m\n"
            "exec('import raycollect as rc\\ndef scene(p):\\n    return rc.look_at([1, 1, 1], [0, 0, 0])', m.__dict__)\n"
            "cloudpickle.register_pickle_by_value(m)\n"
            "again = pickle.loads(cloudpickle.dumps(m.scene))\n"
            "assert again(None).shape == (4, 4)\n")
    _loaded_after(code)
