"""The long tail of what researchers bring: TorchScript and compiled modules, lazy modules, and
the ops beyond conv and linear, each pinned by a count derived by hand."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import archstat
from archstat.errors import InputShapeError, RefusedError


class Fn(nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def count(model: nn.Module, *shape_or_examples, **kwargs) -> archstat.ModelStats:
    with warnings.catch_warnings():
        warnings.simplefilter("error", archstat.UncountedOpWarning)
        return archstat.count(model, *shape_or_examples, **kwargs)


@pytest.mark.parametrize("make", [lambda m: torch.jit.script(m), lambda m: torch.jit.trace(m, torch.rand(1, 3, 8, 8))],
                         ids=["script", "trace"])
def test_torchscript_is_refused_with_a_reason(make) -> None:
    scripted = make(nn.Conv2d(3, 4, 3))
    with pytest.raises(RefusedError, match="TorchScript.*before torch.jit.script"):
        archstat.count(scripted, (1, 3, 8, 8))


def test_a_torchscript_submodule_is_refused_by_name() -> None:
    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.jit.script(nn.Sequential(nn.Conv2d(3, 4, 3)))

        def forward(self, x):
            return self.body(x)

    with pytest.raises(RefusedError, match="submodule 'body' .*TorchScript"):
        archstat.count(Wrapper(), (1, 3, 8, 8))


def test_a_module_compiled_in_place_is_counted_through_its_python() -> None:
    # Module.compile() keeps the module and sets its _compiled_call_impl; conv 3->4 3x3 on 8x8 -> 6x6:
    # 4*36*27 = 3,888 multiply-adds
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model.compile()
    assert count(model, (1, 3, 8, 8)).madds == 3_888
    assert model._compiled_call_impl is not None  # the caller's compiled call is kept


def test_ops_under_vmap_are_uncounted_not_counted_per_example() -> None:
    # torch.vmap hands each op one example's shapes (16 features, not 8 x 16): counting those would give
    # 16*16 = 256 madds for a batch that costs 8*16*16 = 2,048, so the op is an uncounted row instead
    class Vmapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(16, 16)
            self.w = nn.Parameter(torch.rand(16, 16))

        def forward(self, x):
            return torch.vmap(lambda r: self.lin(r) @ self.w)(x)

    with pytest.warns(archstat.UncountedOpWarning, match="2 op"):
        stats = archstat.count(Vmapped(), (8, 16))
    assert stats.madds == 0 and [r.name for r in stats.uncounted] == ["lin:linear", "matmul"]
    assert all("torch.vmap" in r.note for r in stats.uncounted)


with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, and still met in models

    @torch.jit.script
    def _scripted(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, w).relu() * 2.0


    @torch.jit.script
    def _scripted_log_softmax(x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(x, dim=1)

    @torch.jit.script
    def _scripted_roi_align(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return torch.ops.torchvision.roi_align(x, boxes, 1.0, 2, 2, 0, False)


class _Scripted(nn.Module):
    """A TorchScript function inside an nn.Module's forward: its graph runs in C++, where no torch
    function call is seen; its 8x64 @ 64x32 product costs 8*64*32 = 16,384 multiply-adds."""

    def __init__(self, returned: bool = False) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.rand(64, 32))
        self.fc = nn.Linear(32, 10)
        self.returned = returned

    def forward(self, x):
        y = _scripted(x, self.w)
        return y if self.returned else self.fc(y)


def _uncounted(model: nn.Module, shape: tuple, **kwargs) -> archstat.ModelStats:
    with pytest.warns(archstat.UncountedOpWarning):
        return archstat.count(model, shape, **kwargs)


def test_a_torchscript_function_on_meta_is_uncounted_rows_not_its_kernels_insides() -> None:
    # on meta, TorchScript runs torch's Python meta kernels, whose own calls (x.new_empty, torch.where)
    # reach the counter: each kernel is one uncounted row, and none of its calls is counted as an op
    stats = _uncounted(_Scripted(), (8, 64))
    assert [(r.name, r.counted) for r in stats.records] == \
        [("meta_mm", False), ("relu", False), ("mul", False), ("fc", True)]
    assert stats.records[0].input_shapes == ((8, 64), (64, 32))  # the tensors the kernel was given
    assert all("TorchScript" in r.note for r in stats.uncounted)
    assert stats.madds == 8 * 32 * 10  # the linear layer alone: the product ran where archstat cannot see


def test_a_tensor_made_where_archstat_cannot_see_is_an_uncounted_row() -> None:
    # on the CPU the scripted graph runs in C++ without a call reaching torch's Python: the linear
    # layer then reads an 8x32 tensor that no call archstat saw made
    stats = _uncounted(_Scripted(), (8, 64), device="cpu")
    [row] = stats.uncounted
    assert (row.name, row.module, row.output_shape) == ("unseen", "", (8, 32))
    assert row.note.startswith("fc reads a tensor 8x32") and "TorchScript" in row.note
    assert stats.madds == 8 * 32 * 10


def test_a_free_layer_does_not_hide_a_tensor_made_where_archstat_cannot_see() -> None:
    # nn.Identity (free) reads the scripted result first: the row is there, in front of it
    model = _Scripted()
    model.fc = nn.Sequential(nn.Identity(), model.fc)
    stats = _uncounted(model, (8, 64), device="cpu")
    [row] = stats.uncounted
    assert row.note.startswith("fc.0 reads a tensor 8x32")


def test_a_scripted_result_is_held_in_memory_on_meta_as_on_the_cpu() -> None:
    # the 8x32 float32 product (1,024 bytes) is alive until fc reads it, whichever device counts: on meta it
    # is the output of the kernel rows, on the CPU of the unseen row
    meta, cpu = (_uncounted(_Scripted(), (8, 64), device=d) for d in ("meta", "cpu"))
    assert meta.peak_infer_bytes == cpu.peak_infer_bytes


def test_a_kernel_calling_kernels_is_one_row() -> None:
    # a scripted log_softmax runs torch's reference log_softmax, which calls amax's and exp's: one row
    stats = _uncounted(Fn(lambda x: _scripted_log_softmax(x) * 2), (4, 6))
    assert [r.name for r in stats.uncounted] == ["_log_softmax"]
    assert stats.uncounted[0].input_shapes[0] == (4, 6)


def test_a_fake_kernel_registered_outside_torch_is_a_kernel_row() -> None:
    # torchvision registers roi_align's meta kernel in Python; run for a scripted call on meta, its x.new_empty
    # used to be counted as the model's op. One row, named after it, with the tensors it was given
    stats = _uncounted(Fn(lambda x, boxes: _scripted_roi_align(x, boxes) * 2), ((1, 4, 8, 8), (3, 5)))
    assert [(r.name, r.counted) for r in stats.records] == [("meta_roi_align", False), ("mul", True)]
    assert stats.records[0].input_shapes == ((1, 4, 8, 8), (3, 5))


def test_a_returned_tensor_made_where_archstat_cannot_see_is_an_uncounted_row() -> None:
    stats = _uncounted(_Scripted(returned=True), (8, 64), device="cpu")
    [row] = stats.uncounted
    assert row.output_shape == (8, 32) and row.note.startswith("the model returns a tensor 8x32")


def test_torch_function_handling_disabled_in_a_forward_is_an_uncounted_row() -> None:
    # what a C++ extension does: torch calls the counter is not shown; the product's 4x4 result is read by
    # the addition, which is counted (16 element-wise FLOPs), the product (4*4*4 = 64 madds) is not
    def hidden(x):
        with torch._C.DisableTorchFunction():
            y = x @ x
        return y + 1

    stats = _uncounted(Fn(hidden), (4, 4))
    assert [(r.name, r.counted) for r in stats.records] == [("unseen", False), ("add", True)]
    assert stats.madds == 0 and stats.flops == 16


def test_code_torch_compile_traces_through_the_counter_still_counts() -> None:
    # torch.compile (here inside a forward, and inside torch.cond's eager path) traces the counter's
    # TorchFunctionMode: a graph break in it is fatal to torch.cond. The compiled 4x8 @ 8x4 product is
    # 4*8*4 = 128 multiply-adds; torch.cond is an op archstat does not know: an uncounted row, not an error
    product = torch.compile(lambda x: x @ x.t(), backend="eager")
    assert count(Fn(product), (4, 8)).madds == 128

    def branches(x):
        return torch.cond(x.sum() > 0, lambda x: x @ x.t(), lambda x: x * 2, (x,))

    stats = _uncounted(Fn(branches), (4, 4))
    assert [r.name for r in stats.uncounted] == ["cond"]


def test_tensors_the_model_holds_or_is_given_are_not_unseen() -> None:
    # inputs, parameters, buffers, plain tensor attributes (directly and in a list), views, dropout at
    # inference, nn.Flatten's copy of a transposed input (a free module), a tensor made by a factory
    # call: every one was seen, none is a row
    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.full((4,), 2.0)
            self.table = [torch.ones(4)]
            self.drop = nn.Dropout(0.5)
            self.flat = nn.Flatten(0)

        def forward(self, x, y):
            z = self.drop(x) * self.scale + self.table[0] + y.t()[:, :4]
            return z[:2] + torch.zeros(4), self.flat(y.t()) * 2

    for device in ("meta", "cpu"):
        stats = count(Holder().eval(), ((2, 4), (4, 2)), device=device)
        assert not stats.uncounted, device


def test_a_class_constant_is_not_unseen() -> None:
    class Constant(nn.Module):
        offset = torch.ones(4)  # made when the class was defined

        def forward(self, x):
            return x + self.offset

    assert not count(Constant(), (4, 4), device="cpu").uncounted


def test_a_sparse_operand_beside_an_unseen_one_is_not_a_row() -> None:
    # a sparse tensor has no storage to follow; read beside a tensor no seen call made, only that one is a row
    def forward(x):
        with torch._C.DisableTorchFunction():
            hidden = x * 2
        return torch.sparse.addmm(hidden, x.to_sparse(), x)

    stats = _uncounted(Fn(forward), (4, 4), device="cpu")
    assert [r.name for r in stats.uncounted] == ["to_sparse", "unseen", "sparse_addmm"]


def test_an_index_that_gathers_is_a_counted_copy() -> None:
    # a tuple, a range or a list of integers, or a boolean, gathers a copy (torch's result is no view): each
    # is a copy of 2*3*4 = 24 elements moved once (24 read + 24 written), not a free view; basic slicing is
    # free. The copies feed the sum, which must see them as made by a call archstat saw
    def forward(x):
        return x[:, (2, 0, 1)] + x[:, range(3)] + x[:, [2, 0, 1]] + x[True][0] + x[:, 0:3]

    stats = count(Fn(forward), (2, 3, 4))
    gathers = [r for r in stats.records if r.name.startswith("getitem")]
    assert len(gathers) == 4 and all(r.cost.mem_access == 48 for r in gathers)


def test_a_training_count_inside_inference_mode_is_the_same() -> None:
    # inference mode makes tensors that record no graph: the count's own run must not inherit it
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(512, 10))
    outside = archstat.count(model, (2, 3, 8, 8), mode="train")
    with torch.inference_mode():
        inside = archstat.count(model, (2, 3, 8, 8), mode="train")
    assert outside.backward_madds > 0  # the linear layer's input gradient is 2*512*10 of it
    assert (inside.backward_madds, inside.saved_bytes, inside.peak_train_bytes) == \
        (outside.backward_madds, outside.saved_bytes, outside.peak_train_bytes)


def test_a_compiled_module_is_counted_through_its_original() -> None:
    # torch.compile wraps the module without compiling until it is called; archstat counts the original:
    # conv 3->4 3x3 on 8x8 -> 6x6: 4*36*27 = 3,888 multiply-adds
    compiled = torch.compile(nn.Conv2d(3, 4, 3))
    assert count(compiled, (1, 3, 8, 8)).madds == 3_888


def test_lazy_conv_is_counted_and_stays_lazy() -> None:
    # LazyConv2d(8, 3) infers 3 input channels: 8*6*6 * 3*9 = 7,776 madds, 8*3*9 + 8 = 224 params
    model = nn.Sequential(nn.LazyConv2d(8, 3))
    stats = count(model, (1, 3, 8, 8))
    assert (stats.madds, stats.params) == (7_776, 224)
    assert isinstance(model[0], nn.LazyConv2d) and model[0].has_uninitialized_params()


def test_deform_conv2d() -> None:
    # input 1x4x16x16, weight 6x4x3x3, offsets for a 14x14 output: the conv is 6*14*14 * 4*9 = 42,336 madds;
    # sampling: 1*4*9*196 = 7,056 samples at 4 bilinear taps = 28,224 flops on top of 2 * 42,336
    # (torchvision's wrapper also creates an empty mask and a zero bias: two fill rows)
    stats = count(Fn(torchvision.ops.deform_conv2d),
                  example_inputs=(torch.rand(1, 4, 16, 16), torch.zeros(1, 18, 14, 14), torch.rand(6, 4, 3, 3)))
    [row] = [r for r in stats.records if r.category.family == "conv"]
    assert (row.cost.madds, row.cost.flops) == (42_336, 2 * 42_336 + 28_224)


@pytest.mark.parametrize("call", [
    lambda x: F.interpolate(x, (4, 4), None, "bilinear", False, None, True),  # positional, as torch's signature
    lambda x: F.interpolate(x, size=(4, 4), mode="bilinear", antialias=True),
])
def test_antialiased_interpolation_is_counted_with_its_wider_filter(call) -> None:
    # 1x2x8x8 -> 4x4, bilinear with antialias: per channel 8 rows x 14 taps + 4 columns x 14 taps = 168 (by hand in
    # tests/formulas/test_formulas.py); without antialias it would be 16 outputs x 4 taps = 64
    [row] = count(Fn(call), (1, 2, 8, 8)).records
    assert (row.cost.flops, row.output_shape) == (2 * 168, (1, 2, 4, 4))
    plain = count(Fn(lambda x: F.interpolate(x, size=(4, 4), mode="bilinear")), (1, 2, 8, 8)).records[0]
    assert plain.cost.flops == 2 * 64


def test_antialiased_windows_follow_the_input_dtype() -> None:
    # 7 -> 3 bilinear with antialias along the width: torch's kernel, computing the windows in float32, reads
    # 13 inputs (tests/formulas/test_shapes.py probes it with NaNs); in float64 its windows are 12
    resize = Fn(lambda x: F.interpolate(x, size=(1, 3), mode="bilinear", antialias=True))
    flops = {dtype: count(resize, example_inputs=(torch.rand(1, 1, 1, 7, dtype=dtype),)).flops
             for dtype in (torch.float32, torch.float64)}
    assert flops == {torch.float32: 13, torch.float64: 12}


def test_grid_sample() -> None:
    # bilinear sampling of 1x4x16x16 at a 5x7 grid: 4*5*7 = 140 outputs at 4 taps = 560 flops;
    # memory: input 1,024 + grid 70 + output 140
    stats = count(Fn(lambda x, g: F.grid_sample(x, g, align_corners=False)), ((1, 4, 16, 16), (1, 5, 7, 2)))
    [row] = stats.records
    assert (row.cost.flops, row.cost.mem_access, row.output_shape) == (560, 1_024 + 70 + 140, (1, 4, 5, 7))


def test_embedding_reads_only_the_rows_it_gathers() -> None:
    # nn.Embedding(1000, 16) on 2x3 indices: params 16,000; no madds; memory: 6 indices + 6*16 rows read
    # + 96 written
    stats = count(nn.Embedding(1000, 16), example_inputs=torch.zeros(2, 3, dtype=torch.long))
    [row] = stats.records
    assert (row.cost.params, row.cost.madds, row.cost.mem_access, row.output_shape) == (16_000, 0, 198, (2, 3, 16))


def test_embedding_refuses_float_indices() -> None:
    with pytest.raises(InputShapeError, match="indices must be integers"):
        archstat.count(nn.Embedding(10, 4), (2, 3))


def test_fft_flops_follow_5_n_log2_n() -> None:
    # rfft2 over 16x16 (real input: 2.5 N log2 N per transform, N = 256): 2.5 * 256 * 8 = 5,120 per map,
    # 4 maps = 20,480 flops
    stats = count(Fn(torch.fft.rfft2), (1, 4, 16, 16))
    [row] = stats.records
    assert row.cost.flops == 20_480 and row.category.family == "spectral"


def test_fold_adds_every_patch_value_once() -> None:
    # F.fold of (1, 4*9, 36) into 8x8 with a 3x3 kernel: 1,296 additions; output 1x4x8x8
    stats = count(Fn(lambda x: F.fold(x, (8, 8), 3)), (1, 36, 36))
    [row] = stats.records
    assert (row.cost.flops, row.output_shape) == (1_296, (1, 4, 8, 8))


def test_casts_are_copies() -> None:
    # x.long() and .float(): each reads and writes 1x4x8x8 = 256 elements
    stats = count(Fn(lambda x: x.long().float()), (1, 4, 8, 8))
    assert [r.kind for r in stats.records] == ["cast", "cast"] and stats.mem_access == 2 * 512


def test_nms_and_roi_align_run_on_the_cpu_and_say_so() -> None:
    # nms needs values: the count moves to the CPU; 10 boxes: at most 45 IoUs of 13 flops, a 10*ceil(log2 10)
    # = 40-comparison sort and 30 for the areas
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 5 + [[20.0, 20, 30, 30]] * 5)
    stats = count(Fn(lambda b, s: torchvision.ops.nms(b, s, 0.5)), example_inputs=(boxes, torch.rand(10)))
    [row] = stats.records
    assert stats.device == "cpu" and any("meta cannot run it" in n for n in stats.notes)
    assert row.cost.flops == 45 * 13 + 40 + 30 and row.output_shape == (2,)
