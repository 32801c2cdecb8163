"""The method registry: unique names, loud errors, origins, and discovery.

A method is a loss function plus declarative metadata. Built-in methods are the
files `methods/*.py` (loaded by path); third-party packages add more through the
`noisebench.methods` entry-point group, whose modules register on import.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from noisebench.errors import UserError, did_you_mean, unknown
from noisebench.space import Distribution, as_distribution

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
KNOWN_REQUIREMENTS = ("transition",)
ENTRY_POINT_GROUP = "noisebench.methods"


class RegistryError(UserError):
    """An invalid or duplicate registration. Names are leaderboard keys, so this is loud."""


class Registry(Generic[T]):
    """A name -> entry mapping that refuses duplicates and answers "did you mean"."""

    def __init__(self, kind: str, *, pattern: re.Pattern[str] = NAME_RE) -> None:
        self.kind = kind
        self.pattern = pattern  # method names are leaderboard keys: snake_case
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    def register(self, name: str, entry: T, *, origin: str) -> None:
        if not self.pattern.match(name):
            raise RegistryError(
                f"invalid {self.kind} name '{name}': must match {self.pattern.pattern}"
            )
        if name in self._entries:
            raise RegistryError(
                f"duplicate {self.kind} name '{name}': registered by {self._origins[name]} "
                f"and again by {origin}"
            )
        self._entries[name] = entry
        self._origins[name] = origin

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._origins.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise unknown(self.kind, name, self._entries) from None

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origins[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


@dataclass(frozen=True)
class Bounds:
    """The valid range of a parameter: `low <= value < high` by default; `closed` says
    which ends are included ("[)", "[]", "(]" or "()"). None is an open end."""

    low: float | None = None
    high: float | None = None
    closed: str = "[)"

    def __post_init__(self) -> None:
        if self.closed not in ("[)", "[]", "(]", "()"):
            raise ValueError(
                f"bounds: closed must be [), [], (] or (), got {self.closed!r}"
            )

    def contains(self, value: float) -> bool:
        low_ok = self.low is None or (
            value >= self.low if self.closed[0] == "[" else value > self.low
        )
        high_ok = self.high is None or (
            value <= self.high if self.closed[1] == "]" else value < self.high
        )
        return low_ok and high_ok

    def encloses(self, low: float, high: float) -> bool:
        """Whether every value of [low, high] lies inside."""
        return self.contains(low) and self.contains(high)

    def describe(self) -> str:
        lo = "(-inf" if self.low is None else f"{self.closed[0]}{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}{self.closed[1]}"
        return f"{lo}, {hi}"


def as_bounds(spec: Bounds | tuple) -> Bounds:
    """`(low, high)` (half-open, as `[low, high)`) or `(low, high, closed)`."""
    return spec if isinstance(spec, Bounds) else Bounds(*spec)


@dataclass(frozen=True)
class Context:
    """What a method may know besides logits and labels. Methods never touch global RNG state."""

    num_classes: int
    transition: torch.Tensor | None = None  # (K, K), T[i, j] = P(noisy = j | clean = i)
    transition_source: str = "oracle"  # "oracle" | "estimated"
    epoch: int = 0
    progress: float = 0.0  # fraction of training done, in [0, 1]
    generator: torch.Generator | None = None
    # the batch's rows of the method's per-sample state, by name: (B,) or (B, K) each
    state: Mapping[str, torch.Tensor] = field(default_factory=dict)
    # a paired method's peer network on the same batch: its logits (B, K), detached
    peer_logits: torch.Tensor | None = None


@dataclass(frozen=True)
class PerSample:
    """Per-sample state a method keeps across the epochs (ELR's running targets,
    Co-teaching's selections): one row per sample of the training pool, per member.

    The engine allocates it on the device, (S, N) or (S, N, K), filled with `fill`. For
    each batch it gathers the batch's rows by sample id into `ctx.state[name]`, calls
    `update(logits, labels, ctx, **params)` without gradient for the new rows, hands
    those to the loss and writes them back. Members never see each other's rows.
    `selection` marks a 0/1 row of the samples the loss trains on: the engine then
    records, per epoch, how many were selected and how many of those were clean.
    """

    update: Callable[..., torch.Tensor]
    classes: bool = False  # a row of K values per sample, not one
    fill: float = 0.0
    selection: bool = False

    def initial(self, *leading: int, num_classes: int, device=None) -> torch.Tensor:
        import torch

        shape = (*leading, num_classes) if self.classes else leading
        return torch.full(shape, self.fill, device=device)


@dataclass(frozen=True)
class Method:
    """A registered loss. Call it as `method(logits, labels, ctx, **params)`."""

    name: str
    fn: Callable[..., Any] = field(repr=False)
    search_space: Mapping[str, Distribution]
    defaults: Mapping[str, Any]
    neutral: Mapping[str, Any] | None
    bounds: Mapping[str, Bounds]
    requires: tuple[str, ...]
    paper: str
    version: int
    summary: str
    # where it comes from, as records store it: "builtin" (a file in methods/),
    # "entry-point:<distribution>", or the source file of a direct registration
    origin: str = "builtin"
    # a hash of its module's syntax tree (comments, formatting and docstrings left
    # out): records made by other code are never mistaken for this method's
    source_sha: str = ""
    state: Mapping[str, PerSample] = field(default_factory=dict)
    # trains networks in pairs that see each other (ctx.peer_logits): each seed's run
    # is two networks with the same data, labels and batches, and its record the first
    paired: bool = False

    def __post_init__(self) -> None:  # frozen: bounds normalized once, here
        object.__setattr__(
            self, "bounds", {k: as_bounds(b) for k, b in self.bounds.items()}
        )

    def __call__(self, logits, labels, ctx: Context, **params: Any):
        return self.fn(logits, labels, ctx, **params)

    def needs(self) -> list[str]:
        """What the engine provides beyond logits and labels, in words."""
        state = [
            f"state {k} ({'N×K' if spec.classes else 'N'})"
            for k, spec in self.state.items()
        ]
        return [*self.requires, *state, *(["pairs"] if self.paired else [])]

    def step(
        self, logits, labels, ctx: Context, **params: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the loss, the new state rows): each per-sample state updated for this batch
        first, without gradient, then the loss computed on the updated rows."""
        if not self.state:
            return self.fn(logits, labels, ctx, **params), {}
        import torch

        rows = dict(ctx.state)
        with torch.no_grad():
            seen = logits.detach()
            for name, spec in self.state.items():
                rows[name] = spec.update(
                    seen, labels, replace(ctx, state=rows), **params
                )
        return self.fn(logits, labels, replace(ctx, state=rows), **params), rows

    def batch_context(
        self,
        ctx: Context,
        logits: torch.Tensor,
        peer_logits: torch.Tensor | None = None,
    ) -> Context:
        """`ctx` for a single batch outside the engine (probes, the contract, examples):
        fresh state rows, and a peer for a paired method (`peer_logits`, by default the
        batch's logits in reverse sample order, so the peer disagrees)."""
        rows = {
            name: spec.initial(
                logits.shape[0], num_classes=logits.shape[-1], device=logits.device
            )
            for name, spec in self.state.items()
        }
        peer = None
        if self.paired:
            peer = logits.detach().flip(0) if peer_logits is None else peer_logits
        return replace(ctx, state=rows, peer_logits=peer)

    def _require_param(self, key: str) -> None:
        if key not in self.defaults:
            raise UserError(
                f"method '{self.name}' has no parameter '{key}'"
                f"{did_you_mean(key, self.defaults)}; it takes: "
                f"{', '.join(self.defaults) or 'no parameters'}"
            )

    def check_value(self, key: str, value: Any) -> None:
        """Raise UserError unless `value` is a valid setting of parameter `key`."""
        self._require_param(key)
        dist = self.search_space[key]
        if not dist.accepts(value):
            raise UserError(
                f"{self.name}: {key}={value!r} is not a valid {dist.describe()}"
            )
        bounds = self.bounds.get(key)
        if bounds is not None and not bounds.contains(value):
            raise UserError(
                f"{self.name}: {key}={value!r} is out of range {bounds.describe()}"
            )

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with `overrides` applied; every value validated."""
        params = dict(self.defaults)
        for key, value in (overrides or {}).items():
            self.check_value(key, value)
            params[key] = value
        return params

    def parse(
        self, assignments: list[str], *, with_defaults: bool = True
    ) -> dict[str, Any]:
        """Parse CLI `key=value` strings into validated, typed params (with the defaults
        filled in, unless `with_defaults` is False)."""
        overrides: dict[str, Any] = {}
        for text in assignments:
            key, sep, raw = text.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep or not key:
                raise UserError(f"--param expects key=value, got '{text}'")
            self._require_param(key)
            try:
                overrides[key] = self.search_space[key].parse(raw)
            except ValueError as err:
                raise UserError(
                    f"{self.name}: {key}={raw!r} is not a valid "
                    f"{self.search_space[key].describe()} ({err})"
                ) from None
        resolved = self.resolve(overrides)
        return resolved if with_defaults else {k: resolved[k] for k in overrides}


METHODS: Registry[Method] = Registry("method")
_LOAD_ERRORS: dict[str, str] = {}
_discovered = False


def register_method(
    name: str,
    *,
    search_space: Mapping[str, Any],
    defaults: Mapping[str, Any],
    neutral: Mapping[str, Any] | None = None,
    bounds: Mapping[str, Bounds | tuple] | None = None,
    requires: tuple[str, ...] = (),
    paper: str = "",
    version: int = 1,
    summary: str | None = None,
    state: Mapping[str, PerSample] | None = None,
    paired: bool = False,
) -> Callable[[Callable[..., Any]], Method]:
    """Register a loss `fn(logits, labels, ctx, **params) -> scalar` under `name`.

    `state` declares per-sample state (see `PerSample`), read as `ctx.state[name]`;
    `paired` makes the engine train the method's networks in pairs (`ctx.peer_logits`).

    `bounds[key] = (low, high)` is the valid range `low <= value < high` (None: open),
    `(low, high, "[]")` one with both ends included (see `Bounds`);
    `search_space` is the (usually narrower) range the tuner explores.
    """

    def decorate(fn: Callable[..., Any]) -> Method:
        source = inspect.getsourcefile(fn) or fn.__module__
        loading = _loading[-1] if _loading else None
        origin = source if loading is None else loading.where
        space = {k: as_distribution(d) for k, d in search_space.items()}
        kwonly = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        problems = []
        if set(space) != set(defaults) or set(kwonly) != set(defaults):
            problems.append(
                f"search_space {sorted(space)}, defaults {sorted(defaults)} and keyword-only "
                f"arguments {sorted(kwonly)} must name the same parameters"
            )
        if neutral is not None and not set(neutral) <= set(defaults):
            problems.append(
                f"neutral names unknown parameters {sorted(set(neutral) - set(defaults))}"
            )
        if not set(requires) <= set(KNOWN_REQUIREMENTS):
            problems.append(f"requires {requires}; known: {KNOWN_REQUIREMENTS}")
        if paper and not paper.startswith(("http://", "https://")):
            problems.append(f"paper must be a URL, got {paper!r}")
        if int(version) < 1:
            problems.append(f"version must be >= 1, got {version}")
        for key, spec in (state or {}).items():
            if not NAME_RE.match(key) or not isinstance(spec, PerSample):
                problems.append(
                    f"state {key!r} must be a PerSample under a snake_case name"
                )
        if problems:
            raise RegistryError(f"method '{name}' ({origin}): " + "; ".join(problems))
        doc = inspect.getdoc(fn) or inspect.getdoc(sys.modules.get(fn.__module__)) or ""
        method = Method(
            name=name,
            fn=fn,
            search_space=space,
            defaults=dict(defaults),
            neutral=None if neutral is None else dict(neutral),
            bounds=dict(bounds or {}),
            requires=tuple(requires),
            paper=paper,
            version=int(version),
            summary=summary or (doc.strip().splitlines() or [""])[0],
            origin=str(source) if loading is None else loading.origin,
            source_sha=source_sha(fn),
            state=dict(state or {}),
            paired=bool(paired),
        )
        for key, value in method.defaults.items():
            try:
                method.check_value(key, value)
            except UserError as err:
                raise RegistryError(
                    f"method '{name}' ({origin}): default {err}"
                ) from None
            if not space[key].contains(value):
                raise RegistryError(
                    f"method '{name}' ({origin}): default {key}={value!r} lies outside its "
                    f"search space {space[key].describe()}"
                )
        if loading is not None:  # committed by discovery once the whole file loaded
            loading.pending.append(method)
        else:
            discover()  # built-in names are taken first, whoever registers
            if name in _CONTESTED:
                raise RegistryError(_CONTESTED[name])
            METHODS.register(name, method, origin=origin)
        return method

    return decorate


def source_sha(fn: Callable[..., Any]) -> str:
    """A short hash of the syntax tree of the module that defines `fn` (of `fn` alone
    when the module's source cannot be read, of its bytecode when no source exists).
    Comments, formatting and docstrings do not count: they cannot change a number."""
    try:
        tree = ast.parse(Path(inspect.getsourcefile(fn) or "").read_text())
    except (OSError, TypeError, SyntaxError, ValueError):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        except (OSError, TypeError, SyntaxError):  # no source at all (a REPL): bytecode
            code = getattr(fn, "__code__", None)
            blob = repr((code.co_code, code.co_consts)) if code else repr(fn)
            return hashlib.sha256(blob.encode()).hexdigest()[:16]
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    dump = ast.dump(tree, include_attributes=False)
    return hashlib.sha256(dump.encode()).hexdigest()[:16]


def builtin_dir(kind: str) -> Path:
    """`methods/` or `datasets/`: inside the wheel when installed, else the source checkout."""
    packaged = Path(__file__).parent / "_builtin" / kind
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / kind


def _load_file(path: Path, module_name: str | None = None) -> None:
    module_name = module_name or f"noisebench_methods.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise


@dataclass
class _Loading:
    """One plugin being loaded: its registrations wait until all of it has loaded."""

    origin: str  # what records store
    where: str  # what messages name: a file, or an entry point and its distribution
    expected: str | None = (
        None  # a built-in file registers the method it is named after
    )
    pending: list[Method] = field(default_factory=list)


_loading: list[_Loading] = []
# name -> why nobody gets it: two plugins registered it, and neither is chosen
_CONTESTED: dict[str, str] = {}


def _load(loading: _Loading, load: Callable[[], Any], reserved: set[str]) -> None:
    """Run `load`, then commit its registrations all at once, or none and an error."""
    _loading.append(loading)
    try:
        load()
    except Exception as err:  # noqa: BLE001 - a broken plugin must not take the harness down
        _LOAD_ERRORS[loading.where] = f"{type(err).__name__}: {err}"
        return
    finally:
        _loading.pop()
    names = [m.name for m in loading.pending]
    problem = None
    if loading.expected is not None and names != [loading.expected]:
        problem = (
            f"registers {', '.join(map(repr, names)) or 'no method'}, but a file in "
            f"methods/ registers exactly the method it is named after ('{loading.expected}')"
        )
    elif loading.expected is None and set(names) & reserved:
        taken = sorted(set(names) & reserved)
        problem = (
            f"registers {', '.join(map(repr, taken))}: built-in names are reserved, "
            "so the plugin is not used; rename its method"
        )
    if problem:
        _LOAD_ERRORS[loading.where] = f"RegistryError: {problem}"
        return
    for method in loading.pending:
        _commit(method, loading.where)


def _commit(method: Method, where: str) -> None:
    name = method.name
    if name in _CONTESTED or name in METHODS:
        first = _CONTESTED.get(name) or METHODS.origin(name)
        METHODS.unregister(name)
        message = (
            f"method '{name}' is registered by {first} and by {where}; "
            "neither is used until one is renamed or uninstalled"
        )
        _CONTESTED[name] = message
        _LOAD_ERRORS[where] = f"RegistryError: {message}"
        return
    try:
        METHODS.register(name, method, origin=where)
    except RegistryError as err:
        _LOAD_ERRORS[where] = f"RegistryError: {err}"


def discover() -> None:
    """Load built-in method files, then entry-point plugins, once. A plugin that fails
    to load, or that registers a taken name, is kept as an error, never raised: every
    other method still lists and runs."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    files = [
        p
        for p in sorted(builtin_dir("methods").glob("*.py"))
        if not p.name.startswith("_")
    ]
    reserved = {p.stem for p in files}
    for path in files:
        loading = _Loading("builtin", str(path), expected=path.stem)
        _load(loading, lambda path=path: _load_file(path), reserved)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if getattr(ep, "dist", None) else ep.module
        loading = _Loading(
            f"entry-point:{dist}", f"entry point {ep.name} = {ep.value} ({dist})"
        )
        _load(loading, ep.load, reserved)


class PluginLoadError(Exception):
    """A plugin's own code failed while loading: its module raised, or register_method
    refused what it declared. The message is one line."""


def _load_alone(loading: _Loading, load: Callable[[], Any]) -> list[Method]:
    """Run `load` and return what it registered, committing nothing: the registry,
    its load errors and discovery stay as they were."""
    _loading.append(loading)
    try:
        load()
    except Exception as err:  # the plugin's own failure is the answer
        message = " ".join(f"{type(err).__name__}: {err}".split())
        raise PluginLoadError(message) from err
    finally:
        _loading.pop()
    return list(loading.pending)


def builtin_names() -> set[str]:
    """The names of the built-in method files, which no other plugin may take."""
    folder = builtin_dir("methods")
    return {p.stem for p in folder.glob("*.py") if not p.name.startswith("_")}


def load_method_file(path: str | Path) -> Method:
    """Load one `methods/*.py`-style file on its own, wherever it lies, as
    `noisebench methods check FILE` does: nothing is registered, and discovery is
    neither run nor changed. The rules of `methods/` apply: the file registers exactly
    the method named after its stem, and a built-in name is taken only by the built-in
    file itself. Raises UserError for a file that is no method file, PluginLoadError
    when the file's own code fails."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if not path.is_file() or path.suffix != ".py":
        raise UserError(f"{path} is not a Python file (.py): a method is one .py file")
    name = path.stem
    if not NAME_RE.match(name):
        raise UserError(
            f"{path}: a method file is named after its method, and '{name}' is not a "
            f"valid method name (it must match {NAME_RE.pattern})"
        )
    builtin = builtin_dir("methods") / path.name
    is_builtin = name in builtin_names() and builtin.resolve() == path.resolve()
    if name in builtin_names() and not is_builtin:
        raise UserError(
            f"{path}: '{name}' is the built-in method {builtin}, and built-in names are "
            "reserved; rename the file and its method"
        )
    loading = _Loading(
        "builtin" if is_builtin else str(path.resolve()), str(path), expected=name
    )
    module = f"noisebench_check.{name}"  # never the module discovery loads it as
    found = _load_alone(loading, lambda: _load_file(path, module))
    if [m.name for m in found] != [name]:
        raise UserError(
            f"{path} registers {', '.join(repr(m.name) for m in found) or 'no method'}, "
            f"but a method file registers exactly the method it is named after ('{name}')"
        )
    return found[0]


def load_entry_point(name: str) -> Method:
    """Load the method of one installed plugin, the entry point `name` of the
    `noisebench.methods` group, on its own (nothing is registered). Its module is
    imported afresh. Raises UserError for an unknown entry point or one that registers
    no method, a built-in name, or several methods none of which is named `name`;
    PluginLoadError when the plugin's own code fails."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in found:
        if not found:
            raise UserError(
                f"unknown entry point '{name}': no installed package declares one in "
                f"the {ENTRY_POINT_GROUP} group"
            )
        raise unknown(f"{ENTRY_POINT_GROUP} entry point", name, found)
    ep = found[name]
    dist = ep.dist.name if getattr(ep, "dist", None) else ep.module
    where = f"entry point {ep.name} = {ep.value} ({dist})"
    loading = _Loading(f"entry-point:{dist}", where)
    # imported afresh even if discovery imported it before: its registrations run again
    stale = [m for m in sys.modules if m == ep.module or m.startswith(ep.module + ".")]
    saved = {m: sys.modules.pop(m) for m in stale}
    try:
        methods = _load_alone(loading, ep.load)
    finally:
        sys.modules.update(saved)
    names = [m.name for m in methods]
    taken = sorted(set(names) & builtin_names())
    if taken:
        raise UserError(
            f"{where} registers {', '.join(map(repr, taken))}: built-in names are "
            "reserved; rename its method"
        )
    if len(methods) == 1:
        return methods[0]
    if name in names:
        return methods[names.index(name)]
    raise UserError(
        f"{where} registers {', '.join(map(repr, names)) or 'no method'}; "
        f"expected one method, or one named '{name}'"
    )


def load_errors() -> dict[str, str]:
    """Plugins that failed to load: source -> one-line error."""
    discover()
    return dict(_LOAD_ERRORS)


def unloaded_local_files() -> list[str]:
    """Why the files in ./methods/ are not what runs, when this noisebench is installed
    from a wheel (which carries its own copy of the built-in methods)."""
    local, installed = Path.cwd() / "methods", builtin_dir("methods")
    if not local.is_dir() or local.resolve() == installed.resolve():
        return []
    fix = (
        f"this noisebench is installed (not editable) and loads its methods from "
        f"{installed}; `pip install -e .` loads ./methods/, or register the method "
        "through the noisebench.methods entry-point group"
    )
    notes = []
    for path in sorted(local.glob("*.py")):
        copy = installed / path.name
        if path.name.startswith("_"):
            continue
        if not copy.is_file():
            notes.append(f"methods/{path.name} is not loaded: {fix}")
        elif copy.read_bytes() != path.read_bytes():
            notes.append(f"methods/{path.name} differs from the installed copy: {fix}")
    return notes


def get_method(name: str) -> Method:
    discover()
    if name in METHODS:
        return METHODS.get(name)
    if name in _CONTESTED:
        raise UserError(_CONTESTED[name])
    failed = [
        f"{where}: {error}"
        for where, error in _LOAD_ERRORS.items()
        if Path(where).stem == name
    ]
    if failed:
        raise UserError(f"method '{name}' failed to load: {failed[0]}")
    notes = [n for n in unloaded_local_files() if n.startswith(f"methods/{name}.py ")]
    if notes:
        raise UserError(f"unknown method '{name}': {notes[0]}")
    return METHODS.get(name)


def list_methods(pattern: str | None = None) -> list[str]:
    """Registered method names, optionally filtered by a glob pattern."""
    import fnmatch

    discover()
    names = METHODS.names()
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names
