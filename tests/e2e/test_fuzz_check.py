"""Fuzzing `convtune check` with mutated shipped experiments and `--set` values.

Whatever the file or the overrides hold (wrong types, unknown keys, huge or non-finite numbers,
unicode, broken YAML), `check` exits 0 or 2, says what is wrong in one line, never shows a
traceback, and writes nothing outside the folder it runs in.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.cli.main import main
from tests.conftest import EXPERIMENTS, REPO

TREES = {path.name: yaml.safe_load(path.read_text()) for path in EXPERIMENTS}

INTERESTING_NUMBERS = [0, 1, -1, 2, 3, 7, 64, 255, 4097, 2**31 - 1, 2**32, 2**63, 10**30, 10**300]
INTERESTING_FLOATS = [
    0.0,
    -0.0,
    1e-300,
    0.5,
    0.999,
    1.0,
    1.5,
    1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
]
INTERESTING_TEXTS = [
    "", " ", "..", "../../ESCAPED", "a/b", "my study", "inf", ".inf", "nan", "1e999", "-1e-3", "yes", "no",
    "null", "~", "[", "{a: 1", "*x", "&a [*a]", "!!python/object/apply:os.system [echo hi]", "\x00",
    "é", "🙂", "\u202e", "a=b", "models:/x@champion", "runs:/0/model", "/proc/1/x", "9" * 5000,
    "until:", "until:99", "same", "valid", "max", "none", "relu", "tpe", "grid", "auto", "32", "bf16-mixed",
]  # fmt: skip
PLAUSIBLE_TEXTS = [
    "digits", "imagefolder", "mnist", "cifar10", "convnet", "resnet18", "mobilenet_v3_small", "sgd", "adam",
    "rmsprop", "cosine", "step", "onecycle", "avg", "gelu", "tanh", "random", "cmaes", "gp", "median",
    "hyperband", "successive-halving", "val/loss", "train/loss", "maximize", "minimize", "cpu", "16-mixed",
    "backbone", "until:1", "repeat", "conv", "HorizontalFlip", "GaussianBlur", "RandomCrop",
]  # fmt: skip

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(INTERESTING_NUMBERS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(INTERESTING_FLOATS),
)
texts = st.one_of(st.text(max_size=24), st.sampled_from(INTERESTING_TEXTS))
scalars = st.one_of(numbers, texts, st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


Path_ = tuple[Any, ...]  # keys and list indices from the top of an experiment tree


def key_paths(tree: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key and list index in `tree`."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    paths: list[Path_] = []
    for key, value in items:
        paths += [(*prefix, key), *key_paths(value, (*prefix, key))]
    return paths


def similar(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same kind as `value`: these get past the type checks and reach deeper ones."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(min_value=-3, max_value=300), st.sampled_from(INTERESTING_NUMBERS))
    if isinstance(value, float):
        return st.one_of(st.floats(min_value=-2, max_value=2), st.sampled_from(INTERESTING_FLOATS))
    if isinstance(value, str):
        return st.sampled_from(PLAUSIBLE_TEXTS + INTERESTING_TEXTS)
    if isinstance(value, list):
        return st.lists(similar(value[0]) if value else scalars, max_size=5)
    return values


def _put(tree: Any, path: Path_, value: Any, *, delete: bool = False) -> None:
    """Sets, adds or deletes the entry at `path` (whose parents exist)."""
    *parents, last = path
    node = tree
    for part in parents:
        node = node[part]
    if delete:
        node.pop(last) if isinstance(node, list) else node.pop(last, None)
    else:
        node[last] = value


@dataclass
class Mutation:
    kind: str  # replace | delete | add | set (a --set argument) | text (a line inserted as is)
    path: Path_
    value: Any
    raw: str

    @property
    def dotted(self) -> str:
        """The path as `--set` spells it (space keys hold dots themselves: ambiguity is fuzz too)."""
        return ".".join(str(part) for part in self.path)


@st.composite
def mutations(draw: st.DrawFn, tree: dict[str, Any]) -> Mutation:
    kind = draw(
        st.sampled_from(["nudge", "nudge", "nudge", "replace", "delete", "add", "set", "set", "text"])
    )
    known = key_paths(tree)
    if kind == "add":
        parents = [(), *[p for p in known if isinstance(_get(tree, p), dict)]]
        name = draw(st.one_of(st.text(min_size=1, max_size=12), st.sampled_from(["name", "seed", "search"])))
        path = (*draw(st.sampled_from(parents)), name)
    else:
        path = draw(st.sampled_from(known))
    value = draw(similar(_get(tree, path)) if kind in ("nudge", "set") else values)
    raw = draw(st.one_of(st.just(_flow(value)), st.just(_flow(value)), texts))
    return Mutation("replace" if kind == "nudge" else kind, path, value, raw)


def _get(tree: Any, path: Path_) -> Any:
    node = tree
    for part in path:
        node = node[part]
    return node


def _flow(value: Any) -> str:
    try:
        return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...")
    except yaml.YAMLError:
        return str(value)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A mutated experiment file's text and the `--set` arguments to check it with."""
    name = draw(st.sampled_from(sorted(TREES)))
    tree = yaml.safe_load(yaml.safe_dump(TREES[name]))
    tree["data"].pop("root", None)
    tree["data"]["dataset"] = "digits"  # offline and fast; a mutation may still change it
    overrides: list[str] = []
    insertions: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        mutation = draw(mutations(tree))  # drawn from the tree as the previous mutations left it
        if mutation.kind == "set":
            overrides.append(f"{mutation.dotted}={mutation.raw.strip()}")
        elif mutation.kind == "text":
            insertions.append(mutation.raw)
        else:
            _put(tree, mutation.path, mutation.value, delete=mutation.kind == "delete")
    try:
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    except yaml.YAMLError:
        text = str(tree)
    lines = text.splitlines()
    for insertion in insertions:
        at = draw(st.integers(min_value=0, max_value=len(lines)))
        lines.insert(at, insertion)
    return "\n".join(lines) + "\n", overrides


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _files(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*")}


def check_never_crashes(case: tuple[str, list[str]]) -> None:
    text, overrides = case
    repository = set(os.listdir(REPO))
    with tempfile.TemporaryDirectory(prefix="convtune-fuzz-") as base:
        cwd = Path(base) / "a" / "b" / "cwd"  # a path that climbs out (../../x) lands in `base`
        cwd.mkdir(parents=True)
        with _inside(cwd):
            code, out, err = _check(text, overrides)
        escaped = {path for path in _files(Path(base)) if path.parts[:3] != ("a", "b", "cwd")}
    shown = f"\nfile:\n{text}\n--set {overrides}\nstdout:\n{out}\nstderr:\n{err}"
    assert code in (0, 2), shown
    assert "Traceback" not in out + err, shown
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("convtune check: error: "), shown
    else:
        assert lines == [] and "ok" in out, shown
    assert escaped <= {Path("a"), Path("a/b")}, f"check wrote {escaped} outside its folder{shown}"
    assert set(os.listdir(REPO)) == repository, f"check wrote into the repository{shown}"


def _check(text: str, overrides: list[str]) -> tuple[int, str, str]:
    Path("experiment.yaml").write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    args = ["check", "experiment.yaml"]
    for override in overrides:
        args += ["--set", override]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _offline_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVTUNE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CONVTUNE_MLFLOW_CONFIG", raising=False)


FAST = settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FAST
@given(cases())
def test_check_never_crashes_on_mutated_experiments(case: tuple[str, list[str]]) -> None:
    check_never_crashes(case)


@pytest.mark.slow
@settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases())
def test_check_never_crashes_on_mutated_experiments_long(case: tuple[str, list[str]]) -> None:
    check_never_crashes(case)
