"""Counting never harms the model it is given (property-based).

``archstat.count(model, ...)`` promises (``archstat/counting/shadow.py``) to count a shadow copy
and leave the caller's model exactly as it was: the same tensor objects with the same values,
version counters, ``requires_grad`` and ``.grad``; the same hooks, none of them called; the
same training flags and attributes, even when the forward mutates ``self``; and the model
still computes what it computed before. Hypothesis builds small module graphs mixing
everything that makes a copy hard: a submodule registered under two names, tied weights,
buffers (one mutated in place by the forward), forward (pre-)hooks with and without kwargs,
``torch.nn.utils.parametrize`` parametrizations, both ``weight_norm`` APIs, BatchNorm left in
training mode, frozen parameters and parameters holding a ``.grad``, and forwards that read
values (``.item()``, ``torch.nonzero``) so that the count falls back to the CPU.

The oracle for the counts is the layer sizes Hypothesis drew (every Linear call costs
``batch * in * out`` multiply-adds, its parameters count once) and torch's own
``sum(p.numel() for p in model.parameters())``, which deduplicates shared parameters.
"""

from __future__ import annotations

import copy
import warnings
from itertools import pairwise
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.modules import module as module_globals
from torch.nn.parameter import UninitializedTensorMixin
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

import archstat
from archstat.errors import FormulaMismatchWarning

SETTINGS = settings(derandomize=True, max_examples=25, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- building blocks


class Symmetric(nn.Module):
    """A square weight made symmetric (the parametrize tutorial's example)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w.triu() + w.triu(1).transpose(-1, -2)


class Scaled(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 0.5 * w


def _old_weight_norm(module: nn.Module) -> nn.Module:
    with warnings.catch_warnings():  # deprecated in favour of torch.nn.utils.parametrizations.weight_norm
        warnings.simplefilter("ignore", FutureWarning)
        return torch.nn.utils.weight_norm(module)


def _linear(n_in: int, n_out: int, wrap: str) -> nn.Module:
    layer = nn.Linear(n_in, n_out, bias=wrap != "no_bias")
    if wrap == "scaled":
        parametrize.register_parametrization(layer, "weight", Scaled())
    elif wrap == "weight_norm":
        weight_norm(layer)
    elif wrap == "old_weight_norm":
        _old_weight_norm(layer)
    return layer


WRAPS = ("plain", "no_bias", "scaled", "weight_norm", "old_weight_norm")


class Generated(nn.Module):
    """A small network built from a drawn ``spec`` (see :func:`specs`).

    ``body``: Linear layers of the drawn widths (each plain, without bias, parametrized or
    weight-normed), then optionally BatchNorm1d. ``shared``: one square Linear registered twice
    in ``twice`` (and once more as ``self.shared``). ``a``/``b``: square Linears whose weights
    are one tensor. ``sym``: a square Linear with a symmetric parametrization. Buffers: an
    added ``offset``, a non-persistent ``gain`` and a ``steps`` counter the forward increments
    in place; the forward also counts its calls in ``self.calls`` and caches its input."""

    def __init__(self, spec: dict) -> None:
        super().__init__()
        widths, width = spec["widths"], spec["widths"][-1]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(pairwise(widths)):
            layers.append(_linear(n_in, n_out, spec["wraps"][i]))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        if spec["batch_norm"]:
            layers.append(nn.BatchNorm1d(width))
        self.body = nn.Sequential(*layers)
        if spec["alias"]:
            self.shared = nn.Linear(width, width)
            self.twice = nn.Sequential(self.shared, nn.Tanh(), self.shared)
        if spec["tie"]:
            self.a, self.b = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)
            self.b.weight = self.a.weight
        if spec["symmetric"]:
            self.sym = nn.Linear(width, width)
            parametrize.register_parametrization(self.sym, "weight", Symmetric())
        self.register_buffer("offset", torch.randn(width))
        self.register_buffer("gain", torch.full((width,), 0.5), persistent=False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.reads = spec["reads"]
        self.calls = 0
        self.cache: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1  # python state: mutated on whichever module runs
        self.cache = x.detach()  # a tensor cached on self
        self.steps += 1  # a buffer changed in place
        x = self.body(x)
        if hasattr(self, "twice"):
            x = self.twice(x)
        if hasattr(self, "a"):
            x = self.b(self.a(x))
        if hasattr(self, "sym"):
            x = self.sym(x)
        if self.reads == "item" and x.abs().sum().item() < 0:  # reads a value: meta cannot run it
            x = -x
        elif self.reads == "nonzero":
            x = x + 0 * torch.nonzero(x > 0).shape[0]  # a data-dependent shape, value unchanged
        return x * self.gain + self.offset


@st.composite
def specs(draw: Any, wraps: tuple[str, ...] = WRAPS) -> dict:
    widths = draw(st.lists(st.integers(2, 6), min_size=2, max_size=4))
    return dict(
        widths=widths,
        wraps=draw(st.lists(st.sampled_from(wraps), min_size=len(widths) - 1, max_size=len(widths) - 1)),
        batch=draw(st.integers(2, 3)),  # BatchNorm1d in training needs more than one value per channel
        batch_norm=draw(st.booleans()),
        alias=draw(st.booleans()),
        tie=draw(st.booleans()),
        symmetric=draw(st.booleans()),
        reads=draw(st.sampled_from([None, None, "item", "nonzero"])),
        device=draw(st.sampled_from(["meta", "cpu"])),
        training=draw(st.lists(st.booleans(), min_size=8, max_size=8)),
        frozen=draw(st.lists(st.booleans(), min_size=5, max_size=5)),
        with_grad=draw(st.lists(st.booleans(), min_size=5, max_size=5)),
        hooked=draw(st.lists(st.sampled_from(["none", "fwd", "pre", "fwd_kw", "pre_kw", "both"]),
                             min_size=6, max_size=6)),
        seed=draw(st.integers(0, 2**16)),
    )


def build(spec: dict, calls: list) -> nn.Module:
    """The spec's model with its flags, frozen parameters, grads and hooks (logging into ``calls``)."""
    torch.manual_seed(spec["seed"])
    model = Generated(spec)
    for i, m in enumerate(model.modules()):
        m.training = spec["training"][i % len(spec["training"])]
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(not spec["frozen"][i % len(spec["frozen"])])
        if spec["with_grad"][i % len(spec["with_grad"])]:
            p.grad = torch.randn_like(p)
    for i, (name, m) in enumerate(model.named_modules()):
        kind = spec["hooked"][i % len(spec["hooked"])]
        if kind in ("fwd", "both"):
            m.register_forward_hook(lambda mod, args, out, name=name: calls.append(("fwd", name)))
        if kind in ("pre", "both"):
            m.register_forward_pre_hook(lambda mod, args, name=name: calls.append(("pre", name)))
        if kind == "fwd_kw":
            m.register_forward_hook(lambda mod, args, kwargs, out, name=name: calls.append(("fwd_kw", name)),
                                    with_kwargs=True, always_call=True)
        if kind == "pre_kw":
            m.register_forward_pre_hook(lambda mod, args, kwargs, name=name: calls.append(("pre_kw", name)),
                                        with_kwargs=True)
    return model


# --------------------------------------------------------------------------- what "untouched" means


def _tensor_state(t: torch.Tensor) -> dict:
    lazy = isinstance(t, UninitializedTensorMixin)  # holds no values yet: nothing to compare but the object
    return dict(obj=t, value=None if lazy else t.detach().clone(), device=t.device, dtype=t.dtype,
                shape=None if lazy else t.shape,
                requires_grad=t.requires_grad, version=t._version, cls=type(t),
                grad=None if t.grad is None else t.grad, grad_value=None if t.grad is None else t.grad.clone())


def _hook_state(m: nn.Module) -> dict:
    """Every hook container of a module (``_forward_hooks``, ``_forward_pre_hooks_with_kwargs``,
    ``_forward_hooks_always_called``, ``_state_dict_hooks`` ...): keys and the identity of each hook."""
    out: dict[str, list] = {}
    for attr, value in vars(m).items():
        if "hook" in attr and isinstance(value, dict):
            out[attr] = [(k, id(v)) for k, v in value.items()]
        elif "hook" in attr and isinstance(value, set):
            out[attr] = sorted(value)
    return out


def _cuda_rng() -> list:
    """The CUDA generators' states; before CUDA starts, the seeding calls queued for when it
    does (``torch.manual_seed`` queues one: a count that reseeded would replace the caller's)."""
    if torch.cuda.is_initialized():
        return [s.clone() for s in torch.cuda.get_rng_state_all()]
    return [call[0] if call else None for call in torch.cuda._lazy_seed_tracker.get_calls()]


def snapshot(model: nn.Module) -> dict:
    return dict(
        params=[(n, id(p)) for n, p in model.named_parameters(remove_duplicate=False)],
        buffers=[(n, id(b)) for n, b in model.named_buffers(remove_duplicate=False)],
        modules=[(n, id(m), type(m)) for n, m in model.named_modules(remove_duplicate=False)],
        tensors={id(t): _tensor_state(t) for t in (*model.parameters(), *model.buffers())},
        training={id(m): m.training for m in model.modules()},
        attrs={id(m): {k: (v if not isinstance(v, torch.Tensor) else id(v)) for k, v in vars(m).items()
                       if not k.startswith("_")} for m in model.modules()},
        hooks={id(m): _hook_state(m) for m in model.modules()},
        cache=(model.cache, model.cache.clone()) if getattr(model, "cache", None) is not None else None,
        globals={name: dict(getattr(module_globals, name)) for name in dir(module_globals)
                 if name.startswith("_global") and "hook" in name and isinstance(getattr(module_globals, name), dict)},
        rng=torch.random.get_rng_state(),
        cuda_rng=_cuda_rng(),
        grad_mode=torch.is_grad_enabled(),
    )


def assert_untouched(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    assert after["params"] == before["params"], "parameter names or identities changed"
    assert after["buffers"] == before["buffers"], "buffer names or identities changed"
    assert after["modules"] == before["modules"], "module tree, identities or classes changed"
    assert after["tensors"].keys() == before["tensors"].keys()
    for key, was in before["tensors"].items():
        now = after["tensors"][key]
        assert now["obj"] is was["obj"]
        assert (now["device"], now["dtype"], now["shape"], now["requires_grad"], now["cls"]) == \
            (was["device"], was["dtype"], was["shape"], was["requires_grad"], was["cls"])
        assert now["version"] == was["version"], "a tensor of the model was written in place"
        assert (now["value"] is None) == (was["value"] is None)
        assert was["value"] is None or torch.equal(now["value"], was["value"])
        assert now["grad"] is was["grad"]
        if was["grad"] is not None:
            assert torch.equal(now["grad_value"], was["grad_value"])
    assert after["training"] == before["training"]
    assert after["attrs"] == before["attrs"]
    assert after["hooks"] == before["hooks"], "hooks were added, removed or replaced"
    if before["cache"] is not None:
        assert model.cache is before["cache"][0] and torch.equal(model.cache, before["cache"][1])
    assert after["globals"] == before["globals"]
    assert torch.equal(after["rng"], before["rng"]), "the count consumed the caller's random numbers"
    assert len(after["cuda_rng"]) == len(before["cuda_rng"]) and all(
        (a is b) if not isinstance(a, torch.Tensor) else torch.equal(a, b)
        for a, b in zip(after["cuda_rng"], before["cuda_rng"])), "the count reseeded the CUDA generators"
    assert after["grad_mode"] == before["grad_mode"]


def expected_linear_calls(spec: dict) -> list[tuple[int, int, bool]]:
    """(in, out, has_bias) of every Linear call of the forward, in order, from the spec alone."""
    widths, width = spec["widths"], spec["widths"][-1]
    calls = [(n_in, n_out, wrap != "no_bias") for n_in, n_out, wrap in zip(widths, widths[1:], spec["wraps"])]
    calls += [(width, width, True)] * (2 * spec["alias"])  # the shared layer runs twice
    calls += [(width, width, False)] * (2 * spec["tie"])  # a and b: one weight, two products
    calls += [(width, width, True)] * spec["symmetric"]
    return calls


def expected_params(spec: dict) -> int:
    """Parameters from the spec: each distinct layer once (a weight-normed layer holds its
    direction ``v`` (out x in) and magnitude ``g`` (out) instead of the weight), BatchNorm's
    weight and bias, the shared layer once, the tied weight once."""
    widths, width = spec["widths"], spec["widths"][-1]
    total = 0
    for n_in, n_out, wrap in zip(widths, widths[1:], spec["wraps"]):
        total += n_in * n_out + (n_out if wrap != "no_bias" else 0)
        total += n_out if wrap in ("weight_norm", "old_weight_norm") else 0  # g, one per output row
    total += 2 * width if spec["batch_norm"] else 0
    total += (width * width + width) if spec["alias"] else 0
    total += width * width if spec["tie"] else 0
    total += (width * width + width) if spec["symmetric"] else 0
    return total


# --------------------------------------------------------------------------- the properties


def _count(model: nn.Module, spec: dict) -> archstat.ModelStats:
    with warnings.catch_warnings():
        # the old weight_norm's torch._weight_norm has no formula (UncountedOpWarning); a weight-normed Linear
        # holds more params than the linear formula gives (FormulaMismatchWarning, see
        # test_weight_norm_parameters_are_in_the_layer_row)
        warnings.simplefilter("ignore", archstat.UncountedOpWarning)
        warnings.simplefilter("ignore", FormulaMismatchWarning)
        return archstat.count(model, (spec["batch"], spec["widths"][0]), device=spec["device"])


#: Everything at once, whatever Hypothesis draws: every wrap, alias, tie, symmetric weight,
#: BatchNorm, mixed training flags, frozen parameters and grads, every kind of hook.
KITCHEN_SINK = dict(widths=[3, 5, 4, 6, 4, 4], wraps=list(WRAPS), batch=2, batch_norm=True, alias=True, tie=True,
                    symmetric=True, reads=None, device="meta", training=[True, False, True, True, False, False, True,
                                                                          False],
                    frozen=[False, True, False, False, True], with_grad=[True, False, False, True, True],
                    hooked=["both", "fwd", "pre", "fwd_kw", "pre_kw", "none"], seed=7)


@SETTINGS
@given(spec=specs())
@example(spec=KITCHEN_SINK)
@example(spec={**KITCHEN_SINK, "reads": "item"})
@example(spec={**KITCHEN_SINK, "reads": "nonzero", "device": "cpu"})
def test_count_leaves_the_model_exactly_as_it_was(spec: dict) -> None:
    calls: list = []
    model = build(spec, calls)
    x = torch.rand(spec["batch"], spec["widths"][0], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # runs the user's hooks once and mutates the model's state once; under no_grad, so that the
        # old weight_norm's computed `weight` attribute is a leaf and the model can be deep-copied
        # (see test_norm_hooked_module_with_a_computed_weight_can_be_counted)
        reference = model(x)
    hooks_per_forward = len(calls)
    before = snapshot(model)
    stats = _count(model, spec)
    assert len(calls) == hooks_per_forward, "the user's hooks ran during the count"
    assert_untouched(model, before)
    # counted where it should have been: the CPU when asked, or when the forward reads values
    assert stats.device == ("cpu" if spec["device"] == "cpu" or spec["reads"] else "meta")
    if spec["reads"] and spec["device"] == "meta":
        assert any("meta cannot run it" in n for n in stats.notes)
    # and the model still computes exactly what it did
    with torch.no_grad():
        again = model(x)
    assert torch.equal(again, reference)
    assert len(calls) == 2 * hooks_per_forward
    assert model.calls == 2 and int(model.steps) == 2


@SETTINGS
@given(spec=specs(wraps=tuple(w for w in WRAPS if w != "old_weight_norm")))
@example(spec={**KITCHEN_SINK, "wraps": ["plain", "no_bias", "scaled", "weight_norm", "plain"]})
def test_generated_model_counts_every_call_and_every_parameter_once(spec: dict) -> None:
    model = build(spec, [])
    stats = _count(model, spec)
    n = spec["batch"]
    linear = expected_linear_calls(spec)
    # every Linear call: batch * in * out multiply-adds; ReLU, Tanh, BatchNorm, the buffer add and
    # mul are element-wise (flops, no multiply-adds); the parametrizations and weight norms are
    # computed inside the Linear that uses them and add no multiply-adds
    assert stats.madds == sum(n * i * o for i, o, _ in linear)
    assert stats.params == expected_params(spec) == sum(p.numel() for p in model.parameters())
    rows = [r for r in stats.records if r.kind == "linear"]
    assert [r.input_shapes[0] for r in rows] == [(n, i) for i, _, _ in linear]
    assert [r.output_shape for r in rows] == [(n, o) for _, o, _ in linear]


@st.composite
def linear_chains(draw: Any) -> tuple[list[int], int, int, int]:
    widths = draw(st.lists(st.integers(1, 9), min_size=2, max_size=6))
    alias_at = draw(st.integers(0, len(widths) - 1))  # the aliased square layer runs at this width
    reuse = draw(st.integers(2, 4))  # how often the one aliased module object appears in the Sequential
    return widths, alias_at, reuse, draw(st.integers(1, 4))


@SETTINGS
@given(chain=linear_chains(), device=st.sampled_from(["meta", "cpu"]))
def test_sequential_of_linears_with_an_aliased_layer(chain: tuple, device: str) -> None:
    widths, alias_at, reuse, batch = chain
    torch.manual_seed(0)
    w = widths[alias_at]
    shared = nn.Linear(w, w)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(pairwise(widths)):
        if i == alias_at:
            layers += [shared, nn.ReLU()] * (reuse - 1) + [shared]
        layers.append(nn.Linear(n_in, n_out))
    if alias_at == len(widths) - 1:
        layers += [shared, nn.ReLU()] * (reuse - 1) + [shared]
    tied = nn.Linear(widths[-1], widths[-1], bias=False)
    tied.weight = shared.weight if widths[-1] == w else tied.weight
    layers.append(tied)
    model = nn.Sequential(*layers)
    before = snapshot(model)
    stats = archstat.count(model, (batch, widths[0]), device=device)
    assert_untouched(model, before)
    # multiply-adds: batch * in * out for every Linear in the chain, the shared one `reuse` times
    chain_madds = sum(batch * i * o for i, o in pairwise(widths))
    expected = chain_madds + reuse * batch * w * w + batch * widths[-1] ** 2
    assert stats.madds == expected
    # parameters: each distinct Linear once; the tied layer adds its weight only if not shared
    expected_params = sum(i * o + o for i, o in pairwise(widths)) + w * w + w
    expected_params += 0 if widths[-1] == w else widths[-1] ** 2
    assert stats.params == expected_params == sum(p.numel() for p in model.parameters())
    # and each row holds the parameters used there for the first time (torch's identities say which):
    # the shared layer's later uses and a weight tied to it add none
    seen: set[int] = set()
    first_use = []
    for layer in layers:
        first_use.append(sum(p.numel() for p in layer.parameters() if id(p) not in seen))
        seen.update(id(p) for p in layer.parameters())
    assert [r.cost.params for r in stats.records] == first_use


# --------------------------------------------------------------------------- fixed cases


class ReadsItem(nn.Module):
    """Reads an activation's value (meta cannot run it) and keeps state on self."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.seen: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x))
        self.seen.append(float(y.mean().item()))
        keep = torch.nonzero(y.flatten() > 0).numel()
        return y * (keep >= 0)


@pytest.mark.parametrize("device", ["meta", "cpu"])
def test_cpu_fallback_model_in_training_mode_is_untouched(device: str) -> None:
    torch.manual_seed(0)
    model = ReadsItem().train()
    calls: list = []
    model.conv.register_forward_hook(lambda *a: calls.append("conv"))
    model.conv.weight.grad = torch.ones_like(model.conv.weight)
    model.bn.bias.requires_grad_(False)
    x = torch.rand(2, 3, 8, 8)
    before_seen = list(model.seen)
    before = snapshot(model)
    stats = archstat.count(model, (2, 3, 8, 8), device=device)
    assert stats.device == "cpu"
    assert calls == [] and model.seen == before_seen
    assert_untouched(model, before)  # BatchNorm's running stats were not updated by a training-mode run
    # conv: 2 images * 4 * 8 * 8 outputs * 3 * 9 multiply-adds each (BatchNorm, mul: no multiply-adds)
    assert stats.madds == 2 * 4 * 64 * 27
    twin = copy.deepcopy(model)  # an untouched twin (its hook is the same function): both must now do the same
    assert torch.equal(model(x), twin(x)) and calls == ["conv", "conv"]
    assert model.seen == twin.seen and len(model.seen) == 1


def test_lazy_module_stays_uninitialised() -> None:
    model = nn.Sequential(nn.LazyLinear(5), nn.ReLU(), nn.Linear(5, 2))
    lazy = model[0]
    before = snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", archstat.UncountedOpWarning)  # see test_lazy_initialisation_is_not_counted
        stats = archstat.count(model, (3, 7))
    assert type(lazy) is nn.LazyLinear and lazy.has_uninitialized_params()
    assert_untouched(model, before)
    # 3 rows * (7 * 5 + 5 * 2) multiply-adds; params 7*5+5 (inferred on the copy) + 5*2+2
    assert stats.madds == 3 * (7 * 5 + 5 * 2)
    assert stats.params == 40 + 12


def test_spectral_norm_in_training_mode_keeps_its_power_iteration_state() -> None:
    torch.manual_seed(0)
    layer = torch.nn.utils.spectral_norm(nn.Linear(6, 4))  # u, v buffers updated by every training forward
    model = nn.Sequential(layer, nn.ReLU()).train()
    before = snapshot(model)
    twin = copy.deepcopy(model)
    stats = archstat.count(model, (2, 6))
    assert_untouched(model, before)
    # the Linear, 2 rows * 6 * 4, and sigma = u . (W v) that spectral norm's pre-hook computes on the
    # copy: mv 4 * 6, dot 4 (in eval the power iteration does not run)
    assert stats.madds == 2 * 6 * 4 + 4 * 6 + 4
    x = torch.rand(2, 6)
    assert torch.equal(model(x), twin(x))
    assert torch.equal(layer.weight_u, twin[0].weight_u)


def _fresh_old_weight_norm() -> nn.Module:
    return _old_weight_norm(nn.Linear(3, 5))  # sets weight = _weight_norm(v, g): a non-leaf tensor attribute


def _spectral_norm_after_a_training_step() -> nn.Module:
    layer = torch.nn.utils.spectral_norm(nn.Linear(3, 5))
    layer(torch.rand(2, 3))  # with grad enabled: weight = weight_orig / sigma, a non-leaf tensor attribute
    return layer


@pytest.mark.parametrize("make", [_fresh_old_weight_norm, _spectral_norm_after_a_training_step],
                         ids=["weight_norm_fresh", "spectral_norm_after_forward"])
def test_norm_hooked_module_with_a_computed_weight_can_be_counted(make: Any) -> None:
    torch.manual_seed(0)
    layer = make()
    before = snapshot(layer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the weight-norm kernel is an uncounted op; not what this test is about)
        stats = archstat.count(layer, (2, 3))
    assert_untouched(layer, before)
    # the Linear: 2 rows * 3 * 5 multiply-adds; spectral norm's sigma = u . (W v) on the copy adds
    # mv 5 * 3 + dot 5 (eval: no power iteration). params: weight_norm v 5*3 + g 5 + bias 5;
    # spectral_norm weight_orig 5*3 + bias 5
    spectral = hasattr(layer, "weight_orig")
    assert stats.madds == 30 + (15 + 5 if spectral else 0)
    assert stats.params == (20 if spectral else 25) == sum(p.numel() for p in layer.parameters())


def test_lazy_initialisation_is_not_counted() -> None:
    model = nn.Sequential(nn.LazyLinear(5), nn.ReLU(), nn.Linear(5, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = archstat.count(model, (3, 7))
    assert [r.kind for r in stats.records] == ["linear", "relu", "linear"]
    # rows: Linear(7, 5) owns 7*5 + 5 params, Linear(5, 2) 5*2 + 2
    assert [r.cost.params for r in stats.records] == [40, 0, 12]
    # mem_access: Linear(7, 5): in 3*7 + out 3*5 + params 40 = 76; ReLU: 15 read + 15 written = 30;
    # Linear(5, 2): 15 + 6 + 12 = 33
    assert stats.mem_access == 76 + 30 + 33
    assert not [w for w in caught if issubclass(w.category, archstat.UncountedOpWarning)]


def test_weight_norm_parameters_are_in_the_layer_row() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(weight_norm(nn.Linear(3, 5)), nn.ReLU())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stats = archstat.count(model, (2, 3))
    # params: g 5 + v 5*3 + bias 5 = 25 (= torch's count), all of them in the Linear's row
    assert stats.params == 25 == sum(p.numel() for p in model.parameters())
    assert sum(r.cost.params for r in stats.records) + sum(stats.unused_params.values()) == stats.params
    assert stats.madds == 2 * 3 * 5  # (this part holds)
    assert not [w for w in caught if issubclass(w.category, FormulaMismatchWarning)]
