"""The counter's shortcuts give what the slow, obvious path gives.

Three shortcuts make counting fast, and each is checked here against an oracle that does
not share its code:

* stand-in outputs: on meta a handled module whose formula describes its output is not
  run; the stand-in must be what torch's own forward returns (shape, strides, dtype,
  whether it needs a gradient, and for an in-place layer the input's storage itself);
* the shadow copy copies ordinary modules without ``copy.deepcopy``'s generic machinery;
  it must be what ``copy.deepcopy`` makes (shared modules and tensors stay shared, plain
  attributes are copied, hooks the network needs are kept);
* planned functions (comparisons, ``masked_fill``, ``roll``, reductions) are not run on
  meta either; ``check_shapes=True`` runs them and must find the same rows.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import archstat
from archstat.counting.counter import STAND_IN_FORMULAS, OpCounter, _viewable, flat_tensors
from archstat.counting.handlers import handler_for_module
from archstat.counting.shadow import shadow_copy
from archstat.errors import InputShapeError


def _layout(value: Any) -> list[tuple]:
    """What downstream ops can see of an output: per tensor its shape, strides, dtype and
    whether it needs a gradient (None stays None)."""
    if value is None:
        return [None]
    if isinstance(value, tuple):
        return [entry for v in value for entry in _layout(v)]
    return [(tuple(value.shape), value.stride(), value.dtype, value.requires_grad)]


def _counted_output(module: nn.Module, inputs: tuple, kwargs: dict, train: bool = False) -> Any:
    shadow, names = shadow_copy(module)
    counter = OpCounter(shadow, names, train=train)
    return counter.run(lambda: shadow(*inputs, **kwargs), flat_tensors((inputs, kwargs)))


def _torch_output(module: nn.Module, inputs: tuple, kwargs: dict, train: bool = False) -> Any:
    """The oracle: the module's own forward on meta copies of its tensors."""
    shadow = copy.deepcopy(module).to("meta").train(train)
    with torch.set_grad_enabled(train):
        return shadow(*inputs, **kwargs)


def _meta(*shape: int) -> torch.Tensor:
    return torch.empty(shape, device="meta")


# (module, positional inputs, keyword inputs): every formula that may answer with a stand-in
_CASES: list[tuple[str, Callable[[], nn.Module], tuple, dict]] = [
    ("conv", lambda: nn.Conv2d(4, 8, 3, stride=2, padding=1), (_meta(2, 4, 9, 9),), {}),
    ("conv unbatched", lambda: nn.Conv1d(4, 8, 3), (_meta(4, 10),), {}),
    ("conv transpose", lambda: nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1), (_meta(1, 4, 5, 5),), {}),
    ("linear", lambda: nn.Linear(6, 3), (_meta(2, 5, 6),), {}),
    ("batch norm", lambda: nn.BatchNorm2d(4), (_meta(2, 4, 3, 3),), {}),
    ("layer norm", lambda: nn.LayerNorm(6), (_meta(2, 5, 6),), {}),
    ("group norm", lambda: nn.GroupNorm(2, 4), (_meta(2, 4, 3, 3),), {}),
    ("local response norm", lambda: nn.LocalResponseNorm(3), (_meta(2, 4, 3, 3),), {}),
    ("max pool", lambda: nn.MaxPool2d(3, 2, ceil_mode=True), (_meta(1, 4, 8, 8),), {}),
    ("avg pool", lambda: nn.AvgPool1d(2), (_meta(1, 4, 7),), {}),
    ("adaptive pool", lambda: nn.AdaptiveAvgPool2d((2, 3)), (_meta(1, 4, 7, 7),), {}),
    ("activation", lambda: nn.GELU(), (_meta(2, 5),), {}),
    ("softmax", lambda: nn.Softmax(dim=1), (_meta(2, 5),), {}),
    ("interpolate", lambda: nn.Upsample(scale_factor=1.5, mode="bilinear"), (_meta(1, 2, 5, 5),), {}),
    ("channel shuffle", lambda: nn.ChannelShuffle(2), (_meta(1, 4, 3, 3),), {}),
    ("attention", lambda: nn.MultiheadAttention(8, 2), (_meta(5, 2, 8), _meta(7, 2, 8), _meta(7, 2, 8)), {}),
    ("attention batch first, per head", lambda: nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True),
     (_meta(2, 5, 8), _meta(2, 7, 8), _meta(2, 7, 8)), {"average_attn_weights": False}),
    ("attention unbatched, no weights", lambda: nn.MultiheadAttention(8, 4, add_zero_attn=True),
     (_meta(5, 8), _meta(7, 8), _meta(7, 8)), {"need_weights": False}),
]


def test_every_stand_in_formula_is_exercised() -> None:
    covered = {handler_for_module(make()).formula for _, make, _, _ in _CASES}  # type: ignore[union-attr]
    assert covered == STAND_IN_FORMULAS


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("label, make, inputs, kwargs", _CASES, ids=[c[0] for c in _CASES])
def test_stand_in_is_what_torch_returns(label: str, make: Callable[[], nn.Module], inputs: tuple, kwargs: dict,
                                        train: bool) -> None:
    module = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's own notes (batch_first fast path)
        assert _layout(_counted_output(module, inputs, kwargs, train)) == \
            _layout(_torch_output(module, inputs, kwargs, train))


def test_in_place_activation_returns_its_input() -> None:
    x = _meta(2, 3)
    out = _counted_output(nn.ReLU(inplace=True), (x,), {})
    assert out is x  # torch's relu_ returns its input: the memory model sees one storage


def test_no_stand_in_for_a_channels_last_input() -> None:
    """Not contiguous: torch's kernel decides the output's layout, and on the CPU a channels-last
    input gives a channels-last output (the layout the counter's memory model then sees)."""
    conv = nn.Conv2d(4, 4, 3)
    x = torch.zeros(2, 4, 5, 5).to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = conv(x)
    out = _counted_output(conv, (x.to("meta"),), {})
    assert _layout(out) == _layout(expected) and out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("layer, dtype", [  # a norm takes lower-precision floats beside float32 weights: not those
    (nn.Conv2d(4, 4, 3), torch.float16), (nn.Linear(5, 4), torch.float16), (nn.Conv2d(4, 4, 3), torch.int64),
    (nn.Linear(5, 4), torch.int64), (nn.BatchNorm2d(4), torch.int64), (nn.GroupNorm(2, 4), torch.int64)],
    ids=["conv-float16", "linear-float16", "conv-int64", "linear-int64", "batch_norm-int64", "group_norm-int64"])
def test_input_of_another_dtype_than_the_weights_is_refused(layer: nn.Module, dtype: torch.dtype) -> None:
    shape = (2, 5) if isinstance(layer, nn.Linear) else (2, 4, 5, 5)
    with pytest.raises(RuntimeError):  # what torch does on the CPU (meta kernels do not check)
        layer.eval()(torch.zeros(shape, dtype=dtype))
    with pytest.raises(InputShapeError, match=f"layer '0'.*{str(dtype).removeprefix('torch.')}.*float32"):
        archstat.count(nn.Sequential(layer), example_inputs=torch.zeros(shape, dtype=dtype))


def test_a_model_is_counted_in_its_own_dtype_unless_another_is_asked_for() -> None:
    # a half model: archstat's inputs are made in float16 and every element is 2 bytes; asked for
    # float32, its copy is cast (the caller's model stays half). conv 3->4 3x3 on 8x8: 4*36*27 = 3,888 madds
    model = nn.Sequential(nn.Conv2d(3, 4, 3)).half()
    own, cast = archstat.count(model, (1, 3, 8, 8)), archstat.count(model, (1, 3, 8, 8), dtype=torch.float32)
    assert (own.madds, own.itemsize) == (3_888, 2) and (cast.madds, cast.itemsize) == (3_888, 4)
    assert cast.mem_access_bytes == 2 * own.mem_access_bytes and model[0].weight.dtype == torch.float16


def test_attention_with_a_mask_runs_torch() -> None:
    mha = nn.MultiheadAttention(8, 2)
    q, mask = _meta(5, 2, 8), torch.zeros(5, 5, dtype=torch.bool, device="meta")
    assert _layout(_counted_output(mha, (q, q, q), {"attn_mask": mask})) == \
        _layout(_torch_output(mha, (q, q, q), {"attn_mask": mask}))


def test_wrong_input_is_refused_with_the_layer_name_without_running_it() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(5, 2))
    with pytest.raises(InputShapeError, match="'2'.*Linear"):
        archstat.count(model, (1, 3, 9, 9))  # the conv gives 7 columns; the linear layer takes 5


# --------------------------------------------------------------------------- shadow copy


class _Holder(nn.Module):
    """Everything deepcopy must keep straight: a shared submodule, tied weights, a plain
    tensor and a list shared between modules, a parametrization, a lazy layer and an RNN
    (whose flat weights are a plain list of its parameters). (Old-style ``weight_norm``
    cannot be deep-copied at all; the counter's own tests count it.)"""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(4, 4)
        self.a, self.b = shared, nn.Sequential(shared, nn.ReLU())
        self.tied = nn.Linear(4, 4, bias=False)
        self.tied_too = nn.Linear(4, 4, bias=False)
        self.tied_too.weight = self.tied.weight
        self.register_buffer("table", torch.arange(4.0))
        self.scale = torch.ones(4)  # a plain tensor attribute
        self.config = [1, 2, {"k": 3}]
        self.tied.config = self.config  # one list, reachable from two modules
        self.param = nn.utils.parametrizations.orthogonal(nn.Linear(4, 4))
        self.lazy = nn.LazyLinear(3)
        self.rnn = nn.GRU(4, 4)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = self.b(self.a(x)) * self.scale + self.table
        x = self.param(self.tied_too(self.tied(x)))
        return self.lazy(self.rnn(x.unsqueeze(0))[0][0])


def _shape(t: torch.Tensor) -> Any:
    return type(t).__name__ if isinstance(t, nn.parameter.UninitializedTensorMixin) else tuple(t.shape)


def _structure(model: nn.Module) -> dict:
    return {
        "modules": [(n, type(m).__name__, m.training) for n, m in model.named_modules()],
        "params": [(n, _shape(p), p.dtype, p.requires_grad) for n, p in model.named_parameters()],
        "buffers": [(n, _shape(b), b.dtype) for n, b in model.named_buffers()],
        "hooks": [(n, [type(h).__name__ for h in m._forward_pre_hooks.values()]) for n, m in model.named_modules()],
        "plain": [(n, {k: v for k, v in vars(m).items() if isinstance(v, (int, str, list, tuple, dict))
                       and not k.startswith("_")}) for n, m in model.named_modules()],
    }


def test_shadow_copy_is_what_deepcopy_makes() -> None:
    model = _Holder()
    model.a.register_forward_hook(lambda *args: None)  # a user's hook: the copy drops it
    shadow, names = shadow_copy(model)
    reference = copy.deepcopy(model)
    reference.a._forward_hooks.clear()
    assert _structure(shadow) == _structure(reference)
    assert all(t.is_meta for t in (*shadow.parameters(), *shadow.buffers(), shadow.scale))
    assert shadow.a is shadow.b[0] and shadow.tied.weight is shadow.tied_too.weight
    assert shadow.tied.config is shadow.config and shadow.config is not model.config
    assert shadow.rnn._flat_weights[0] is shadow.rnn.weight_ih_l0
    assert sorted(names.values()) == sorted(n for n, _ in model.named_parameters())
    assert not model.a._forward_hooks == {}  # the user's model keeps its hook


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "channels_last_3d", "transposed", "sliced",
                                    "one channel, channels_last", "empty", "scalar"])
def test_stand_ins_of_a_meta_built_model_have_what_empty_like_gives(layout: str) -> None:
    """A model built on meta: its stand-ins are not made by ``torch.empty_like`` (a slow Python
    decomposition from a meta tensor); the oracle is ``torch.empty_like`` itself."""
    meta = torch.device("meta")
    tensor = {"contiguous": lambda: torch.empty(8, 4, 3, 3, device=meta),
              "channels_last": lambda: torch.empty(8, 4, 3, 3, device=meta).to(memory_format=torch.channels_last),
              "channels_last_3d": lambda: torch.empty(2, 3, 4, 5, 6, device=meta).to(
                  memory_format=torch.channels_last_3d),
              "transposed": lambda: torch.empty(4, 6, device=meta).t(),
              "sliced": lambda: torch.empty(4, 6, device=meta)[:, ::2],
              "one channel, channels_last": lambda: torch.empty(8, 1, 3, 3, device=meta).to(
                  memory_format=torch.channels_last),
              "empty": lambda: torch.empty(0, 3, device=meta),
              "scalar": lambda: torch.empty((), device=meta)}[layout]()
    holder = nn.Module()
    holder.register_buffer("t", tensor)
    holder.p = nn.Parameter(tensor.clone() if tensor.dim() else tensor)
    for dtype in (None, torch.float16):
        shadow, _ = shadow_copy(holder, dtype=dtype)
        for copied, original in ((shadow.t, holder.t), (shadow.p, holder.p)):
            expected = torch.empty_like(original, dtype=dtype or original.dtype)
            assert (copied.shape, copied.stride(), copied.dtype, copied.is_meta) == \
                (expected.shape, expected.stride(), expected.dtype, True)
            assert copied is not original
        assert type(shadow.p) is nn.Parameter and shadow.p.requires_grad


def test_shadow_copy_counts_like_the_model_built_by_name() -> None:
    """The same model counted through a shadow of a built copy and built privately on meta."""
    built = archstat.create_model("mobilenet_v3_small").eval()
    assert [r.row() for r in archstat.count(built).records] == \
        [r.row() for r in archstat.count("mobilenet_v3_small").records]


# --------------------------------------------------------------------------- planned functions


class _Functional(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        mask = x > 0.5
        return (x.mean((2, 3)), x.sum(dim=1, keepdim=True), torch.amax(x, 2), x.sum(), x.mean([1, 2], True),
                x.masked_fill(mask, -1.0), torch.roll(x, 1, 2), x.flip(1), x ** 2, torch.maximum(x, x.abs()),
                (x != 0) & mask, torch.tril(x), x.long().sum(1))


def test_planned_functions_agree_with_running_them() -> None:
    from archstat.errors import FormulaMismatchWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", FormulaMismatchWarning)
        strict = archstat.count(_Functional(), (2, 3, 4, 5), check_shapes=True)
    fast = archstat.count(_Functional(), (2, 3, 4, 5))
    assert [r.row() for r in strict.records] == [r.row() for r in fast.records]
    assert strict.outputs == fast.outputs  # same sizes and dtypes (bool masks, int64 sums)


class _Layouts(nn.Module):
    """Copies and views whose meta result the counter gives itself: ``contiguous`` of a
    contiguous and of a transposed tensor, ``reshape`` that is a view and one that copies
    (with a -1), and a table indexed by a tensor of integers (Swin's relative position bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.rand(9, 2))
        self.register_buffer("index", torch.tensor([[0, 4], [8, 1]]))

    def forward(self, x: torch.Tensor) -> tuple:
        t = x.transpose(1, 2)
        return (x.contiguous(), t.contiguous(), x.reshape(2, -1), t.reshape(-1, 5), torch.reshape(t, (2, 60)),
                self.table[self.index], t.contiguous().view(2, 3, 20) * 2)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_layouts_given_without_torch_agree_with_running_them(mode: str) -> None:
    """The oracle is ``check_shapes=True``, which runs torch's kernels for every op: the same
    rows (a view free, a copy counted), the same outputs by storage, the same training memory."""
    strict = archstat.count(_Layouts(), (2, 3, 4, 5), mode=mode, check_shapes=True)
    fast = archstat.count(_Layouts(), (2, 3, 4, 5), mode=mode)
    assert [r.row() for r in strict.records] == [r.row() for r in fast.records]
    # by hand: two copies of 2*3*4*5 = 120 elements (t.contiguous() twice: the second is a new
    # copy), one reshape copy of the transposed t (the other reshape is a view), one gather
    # of 2x2 rows of 2, and the product
    kinds = [(r.type, r.output_shape) for r in fast.records]
    assert kinds == [("contiguous", (2, 4, 3, 5)), ("reshape", (24, 5)), ("reshape", (2, 60)),
                     ("getitem", (2, 2, 2)), ("contiguous", (2, 4, 3, 5)), ("mul", (2, 3, 20))]
    assert strict.outputs == fast.outputs and strict.free_ops == fast.free_ops
    assert (fast.saved_bytes, fast.peak_train_bytes, fast.backward_madds) == \
        (strict.saved_bytes, strict.peak_train_bytes, strict.backward_madds)


@st.composite
def _strided_and_new_shape(draw: st.DrawFn) -> tuple[torch.Tensor, list[int]]:
    """A meta tensor with the strides models make (permuted, sliced with a step, expanded,
    size-1 and empty dimensions) and another shape of as many elements."""
    shape = draw(st.lists(st.sampled_from([0, 1, 1, 2, 3, 4, 6]), min_size=0, max_size=5))
    x = torch.empty(shape, device="meta")
    if x.dim():
        x = x.permute(draw(st.permutations(range(x.dim()))))
        dim = draw(st.integers(0, x.dim() - 1))
        if draw(st.booleans()):
            x = x[(slice(None),) * dim + (slice(None, None, draw(st.integers(1, 2))),)]
        if draw(st.booleans()) and x.shape[dim] == 1:
            x = x.expand(*x.shape[:dim], 3, *x.shape[dim + 1:])
    factors = [p for p in (2, 3, 5) for _ in range(8) if x.numel() and x.numel() % p ** (_ + 1) == 0]
    new = [1] * draw(st.integers(0, 2)) + [x.numel()] if x.numel() else [0, *draw(st.lists(st.integers(1, 3)))]
    for p in draw(st.permutations(factors)) if x.numel() else ():  # split the elements into factors
        i = draw(st.integers(0, len(new) - 1))
        if new[i] % p == 0 and draw(st.booleans()):
            new[i] //= p
            new.insert(draw(st.integers(0, len(new))), p)
    return x, new


@settings(max_examples=400, deadline=None)
@given(_strided_and_new_shape())
def test_viewable_is_what_torch_view_allows(case: tuple[torch.Tensor, list[int]]) -> None:
    """The oracle is torch itself: ``view`` raises exactly where the strides allow no view."""
    x, new = case
    try:
        x.view(new)
        allowed = True
    except RuntimeError:
        allowed = False
    assert _viewable(tuple(x.shape), x.stride(), new) is allowed


def test_viewable_on_swin_windows() -> None:
    """By hand, Swin's window partition: (1, 8, 7, 8, 7, 96) permuted (0, 1, 3, 2, 4, 5) has shape
    (1, 8, 8, 7, 7, 96) and strides (301056, 37632, 672, 5376, 96, 1). Its contiguous chunks, from
    the right: (7, 96) (96 = 96 * 1), then 7 (5376 != 7 * 96), 8 (672 != 7 * 5376), and (1, 8).
    So (64, 49, 96) needs the two 8s merged and copies; (1, 8, 8, 7, 7, 2, 48) splits only the
    last chunk and is a view; after ``contiguous()`` everything is one chunk."""
    x = torch.empty(1, 8, 7, 8, 7, 96, device="meta").permute(0, 1, 3, 2, 4, 5)
    assert x.stride() == (301056, 37632, 672, 5376, 96, 1)
    assert not _viewable(tuple(x.shape), x.stride(), [64, 49, 96])
    assert _viewable(tuple(x.shape), x.stride(), [1, 8, 8, 7, 7, 2, 48])
    y = x.contiguous()
    assert _viewable(tuple(y.shape), y.stride(), [64, 49, 96])


def test_layout_outputs_are_what_torch_returns() -> None:
    """Shapes, strides, dtypes and gradients of the given results, against torch's meta kernels."""
    x = _meta(2, 3, 4, 5).requires_grad_(True)
    with torch.enable_grad():
        assert _layout(_counted_output(_Layouts(), (x,), {}, train=True)) == \
            _layout(_torch_output(_Layouts(), (x,), {}, train=True))


def test_shortcuts_leave_training_memory_unchanged() -> None:
    """Saved tensors and peaks are read off the stand-ins' storages: the same as when torch runs."""
    for name in ("resnet18", "vit_b_32"):
        strict = archstat.count(name, mode="train", check_shapes=True)
        fast = archstat.count(name, mode="train")
        assert (fast.saved_bytes, fast.peak_train_bytes, fast.backward_madds) == \
            (strict.saved_bytes, strict.peak_train_bytes, strict.backward_madds)


class WritesInPlace(nn.Module):
    """In-place writes on outputs a stand-in answers for (a conv's, a product's, a linear's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 5)
        self.scale = nn.Parameter(torch.ones(4, 1, 1))

    def forward(self, x):
        y = self.conv(x)
        y[:, 0] = 0
        z = y * self.scale
        z[:, 1] = 1
        return self.fc(z.mean((2, 3))).clamp_min_(0)


def test_training_stand_ins_take_in_place_writes_as_real_outputs_do() -> None:
    """A stand-in of an output autograd records is not a leaf: torch allows the in-place writes on
    the real outputs, so the count must too, and equal the count that runs every op."""
    fast = archstat.count(WritesInPlace(), (2, 3, 8, 8), mode="train")
    checked = archstat.count(WritesInPlace(), (2, 3, 8, 8), mode="train", check_shapes=True)
    assert (fast.madds, fast.backward_madds, fast.saved_bytes, fast.peak_train_bytes) == \
        (checked.madds, checked.backward_madds, checked.saved_bytes, checked.peak_train_bytes)
