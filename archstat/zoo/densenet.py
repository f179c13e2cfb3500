"""DenseNet-121 (Huang et al., arXiv:1608.06993, Table 1): torchvision's ``densenet121``
is the paper's network (growth rate 32, blocks of 6/12/24/16 BN-ReLU-Conv(1x1)-BN-ReLU-
Conv(3x3) layers, compression 0.5 transitions) and is reused as it is.

The paper prints the ImageNet parameter counts and FLOPs only as a plot (Fig. 3), so the
figures checked here are torchvision's metadata for the same network.
"""

from __future__ import annotations

from archstat.zoo.registry import Expected, Ref, register_model, torchvision_builder

__all__: list[str] = []

register_model(
    "densenet121", family="densenet", paper="Densely Connected Convolutional Networks (Huang et al., CVPR 2017)",
    arxiv="1608.06993", table="torchvision metadata (the paper plots its figures, Fig. 3)",
    params=Expected(Ref("DenseNet121", "num_params", source="torchvision"), 0.0,
                    "the paper prints no ImageNet parameter count; torchvision's num_params is exact"),
    madds=Expected.rounded(Ref("DenseNet121", "_ops (GFLOPS column)", source="torchvision"),
                           "torchvision's 2.834 G is printed to three decimals (tolerance: half a unit)"),
    top1_err=Ref("DenseNet-121", "top-1 error (single-crop / 10-crop)", table="Table 3"),
    same_as=("timm:densenet121",),
    differs="torchvision's densenet121 is the paper's network (the same builder); timm's densenet121 too.",
)(torchvision_builder("densenet121"))
