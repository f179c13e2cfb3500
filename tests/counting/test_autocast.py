"""Counting under ``autocast``: which ops take lower-precision copies of their inputs
(:mod:`archstat.counting.autocast`), checked against ``torch.autocast`` itself on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import archstat


class _Product(nn.Module):
    """A bfloat16 activation times a float32 parameter, by torch.einsum."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.rand(4, 5))

    def forward(self, x):
        return torch.einsum("ij,jk->ik", x.bfloat16(), self.w)


def test_einsum_runs_in_the_lower_precision_on_the_cpu() -> None:
    # torch's oracle: CPU autocast does not list einsum, but casts the bmm it runs inside, so a bfloat16 x
    # float32 product works and gives bfloat16 (without autocast torch refuses it)
    model = _Product()
    with torch.autocast("cpu", torch.bfloat16):
        assert model(torch.rand(8, 4)).dtype == torch.bfloat16
    with pytest.raises(RuntimeError):
        model(torch.rand(8, 4))
    # archstat counts it as autocast runs it: 8*4*5 = 160 multiply-adds, the output in bfloat16 (2 bytes)
    stats = archstat.count(model, (8, 4), autocast="cpu:bfloat16")
    [product] = [r for r in stats.records if r.counted and r.cost.madds]
    assert product.cost.madds == 160 and product.outputs[0].itemsize == 2


@pytest.mark.parametrize("name", ["maxvit_t", "mvit_v2_s"])
def test_torchvision_attention_with_einsum_counts_under_cpu_autocast(name: str) -> None:
    # their relative-position attention multiplies a float32 softmax or parameter with a bfloat16 tensor by
    # torch.einsum, which CPU autocast runs (see above); this used to fail as a dtype mismatch
    assert archstat.count(name, autocast="cpu:bfloat16").madds == archstat.count(name).madds


class _Detect(nn.Module):
    """A conv's bfloat16 features pooled per box by roi_align, and the boxes filtered by nms."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x, boxes, scores):
        import torchvision

        pooled = torchvision.ops.roi_align(self.conv(x), [boxes.to(x.dtype)], output_size=2)
        return pooled, torchvision.ops.nms(boxes.bfloat16(), scores.bfloat16(), 0.5)


def test_torchvisions_detection_ops_run_in_float32_and_give_back_the_input_dtype() -> None:
    # torch's oracle: torchvision registers CPU autocast kernels of its own: roi_align and nms take float32
    # copies (their CPU kernels have no bfloat16), roi_align's result comes back in its input's bfloat16
    torch.manual_seed(0)
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 5.0, 5.0], [2.0, 0.0, 7.0, 6.0]])
    inputs = (torch.rand(1, 3, 8, 8), boxes, torch.rand(3))
    model = _Detect()
    with torch.autocast("cpu", torch.bfloat16):
        pooled, keep = model(*inputs)
    assert pooled.dtype == torch.bfloat16 and keep.dtype == torch.int64
    import torchvision

    for op in (lambda: torchvision.ops.roi_align(torch.rand(1, 4, 8, 8).bfloat16(), [boxes.bfloat16()], 2),
               lambda: torchvision.ops.nms(boxes.bfloat16(), inputs[2].bfloat16(), 0.5)):
        with pytest.raises(RuntimeError, match="not implemented for 'BFloat16'"):  # without autocast: refused
            op()
    # archstat: the count runs (it failed in nms before), roi_align's output is 2 bytes an element
    stats = archstat.count(model, example_inputs=inputs, autocast="cpu:bfloat16")
    [roi] = [r for r in stats.records if r.type == "roi_align"]
    assert roi.output_shape == (3, 4, 2, 2) and roi.outputs[0].itemsize == 2
    assert any(r.type == "nms" for r in stats.records)


class _RoiPool(nn.Module):
    def forward(self, x, boxes):
        import torchvision

        return torchvision.ops.roi_pool(x, boxes, 2)


def test_an_op_that_returns_a_tuple_gives_back_its_first_result_in_the_input_dtype() -> None:
    # torchvision's CUDA autocast kernel of roi_pool: roi_pool(float32 casts) -> (output, argmax), output
    # .to(input dtype); archstat failed here ("'tuple' object has no attribute 'to'"). 1 box on 8 half-precision
    # channels pooled to 2x2: an output of 8*2*2 = 32 elements, half precision again
    inputs = (torch.rand(1, 8, 8, 8).half(), torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]]))
    stats = archstat.count(_RoiPool(), example_inputs=inputs, autocast="cuda:float16")
    [roi] = [r for r in stats.records if r.type == "roi_pool"]
    assert roi.output_shape == (1, 8, 2, 2) and roi.outputs[0].itemsize == 2


def test_cpu_autocast_runs_only_the_torchvision_ops_torchvision_registers_for_it() -> None:
    # torchvision 0.29 registers CPU autocast kernels for nms and roi_align only: under torch.autocast("cpu")
    # roi_pool gets the bfloat16 tensor and its CPU kernel refuses it (archstat casts nothing for it either)
    x, boxes = torch.rand(1, 8, 8, 8).bfloat16(), torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]]).bfloat16()
    with torch.autocast("cpu", torch.bfloat16), pytest.raises(RuntimeError, match="not implemented for 'BFloat16'"):
        _RoiPool()(x, boxes)
    from archstat.counting.autocast import cast_target

    assert cast_target("cpu", "roi_align") == "float32" and cast_target("cpu", "roi_pool") is None
    assert cast_target("cuda", "roi_pool") == "float32"
