"""The package's shape: no import cycle, no stage importing another stage, one module per task, and every
component a config can name offers every method the wiring calls (the Protocols), so nothing is probed."""

import ast
from pathlib import Path

import pytest
from hydra.utils import get_class

from odin.data import Dataset
from odin.generate import TextToImage
from odin.post import PostStage
from odin.prompts import PromptGenerator
from odin.tasks import get_task, task_names

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "odin"
# The stages of the data flow. Each may import shared modules (store, keys, errors, files, the scorers of
# odin/filter.py that the prompt check and the image filter share, ...) and another stage's interface (a
# package's __init__, or odin/post.py: the Protocol and the record it hands on), never another stage's
# implementation.
STAGES = {
    "dataset": ("odin.data",),
    "prompts": ("odin.prompts",),
    "generate": ("odin.generate",),
    "post": ("odin.post", "odin.post_auto", "odin.match"),
    "filter": ("odin.filter_stage",),
    "task": ("odin.tasks",),
}
INTERFACES = {"odin.data", "odin.prompts", "odin.generate", "odin.tasks", "odin.post"}


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """module -> the odin modules it imports (at the top or inside a function)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name not in (module, "odin"):
                    graph[module].add(name)
    return graph


def stage_of(module: str) -> str | None:
    for stage, prefixes in STAGES.items():
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return stage
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_one():  # the check above can fail
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_stage_imports_another_stage():
    crossing = [(m, other) for m, imported in import_graph().items() for other in imported
                if stage_of(m) and stage_of(other) and stage_of(m) != stage_of(other) and other not in INTERFACES]
    assert crossing == []


def test_the_wiring_is_short():
    assert len((PACKAGE / "run.py").read_text().splitlines()) <= 80


def test_every_task_is_its_module_and_its_yaml():
    assert task_names() == sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))
    for name in task_names():
        assert callable(get_task(name).run)


def protocol_members(protocol: type) -> set[str]:
    """What a Protocol lists: its methods and its annotated attributes."""
    return {name for name in vars(protocol) if not name.startswith("_")} | set(
        getattr(protocol, "__annotations__", {})) | ({"__call__"} if "__call__" in vars(protocol) else set())


GROUPS = {"dataset": Dataset, "prompt": PromptGenerator, "diffusion": TextToImage, "post": PostStage}
# Attributes an instance sets in __init__ (name, classes, ...) are checked on a built object where that is cheap.
INSTANCE_ATTRIBUTES = {"name", "classes", "context", "channels", "images_per_prompt", "apply_to_test"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_target_in_conf_offers_what_its_protocol_lists(group, compose):
    protocol = GROUPS[group]
    wanted = protocol_members(protocol) - INSTANCE_ATTRIBUTES
    assert wanted, f"{protocol.__name__} lists nothing"
    missing = {}
    for option in options(group):
        cls = get_class(compose(f"{group}={option}")[group]["_target_"])
        lacking = sorted(m for m in wanted if not hasattr(cls, m))
        if lacking:
            missing[f"{group}={option} ({cls.__name__})"] = lacking
    assert missing == {}


def test_the_protocol_check_can_fail():
    class Half:
        def check(self, labels):
            pass

    assert {"resolved", "more", "gives_more"} <= {m for m in protocol_members(PromptGenerator) if not hasattr(Half, m)}
