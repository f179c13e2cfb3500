"""Training cost: the memory of a training step estimated from a count, and measured on a real one.

* :mod:`~archstat.training.memory`: parameters, gradients, optimizer state, saved
  activations and the peak of a step (and of a forward pass), from the tensors a count saw;
* :mod:`~archstat.training.measure`: a real training step on the CPU (or CUDA), its peak
  memory and the tensors autograd saved, beside the estimate.

The formulas of the backward pass and of the optimizer step are in
:mod:`archstat.formulas.training`.
"""
