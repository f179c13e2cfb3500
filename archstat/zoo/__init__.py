"""The paper-faithful model zoo. Importing it registers every family in :data:`ZOO`.

Each family module holds one parametrised class (or reuses torchvision's builder where
torchvision's network is the paper's) and registers its named configurations with the
metadata that ties them to their papers; see :mod:`archstat.zoo.registry`.
"""

from archstat.zoo.registry import ZOO, Expected, Ref, ZooEntry, printed_rounding, register_model, torchvision_builder
from archstat.zoo import (  # noqa: F401  (each registers its models)
    classic, densenet, inception, mobilenet, res2net, resnet, shufflenet, squeezenet, xception,
)

__all__ = ["ZOO", "Expected", "Ref", "ZooEntry", "register_model", "torchvision_builder", "printed_rounding"]
