"""The paper-faithful model zoo. Importing it registers every family in :data:`ZOO`."""

from archstat.zoo.registry import ZOO, Expected, Ref, ZooEntry, register_model
from archstat.zoo import resnet  # noqa: F401  (registers its models)

__all__ = ["ZOO", "Expected", "Ref", "ZooEntry", "register_model"]
