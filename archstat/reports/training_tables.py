"""What a training step of the seed networks costs: the report's training tables.

* ``training_cost``: ResNet-18/50/152, MobileNet v1/v2, ShuffleNet v1/v2 and SE-ResNet-50
  at batch 32 (fp32, SGD with momentum): forward and backward multiply-adds, the optimizer
  step's FLOPs, the activations saved for backward and the step's estimated peak memory,
  all counted on the meta device (:func:`archstat.count` with ``mode="train"``);
* ``training_peak``: the estimated peak of a training step beside the peak measured on a
  real step on this machine (:func:`archstat.training.measure.measure_step`), at several
  batch sizes, for the ``peak_memory_vs_batch`` figure.

No figure here is published: both tables are measurements, and say so.
"""

from __future__ import annotations

from archstat.reports.paper_tables import ReportOptions, TableResult, paper_table

__all__ = ["TRAINING_MODELS", "TRAINING_BATCH", "PEAK_MODELS", "peak_batches"]

#: The seed networks of the training-cost table: (row label, model name).
TRAINING_MODELS = (("ResNet-18", "resnet18"), ("ResNet-50", "resnet50"), ("ResNet-152", "resnet152"),
                   ("MobileNet v1", "mobilenet_v1"), ("MobileNet v2", "mobilenet_v2"),
                   ("ShuffleNet v1 (g=3)", "shufflenet_v1_g3_x1_0"), ("ShuffleNet v2 1x", "shufflenet_v2_x1_0"),
                   ("SE-ResNet-50", "se_resnet50"))
TRAINING_BATCH = 32
TRAINING_OPTIMIZER = "sgd_momentum"

#: The networks whose measured peak the figure draws against the batch size.
PEAK_MODELS = ("resnet18", "mobilenet_v2")


def peak_batches(options: ReportOptions) -> tuple[int, ...]:
    return (1, 4) if options.quick else (1, 2, 4, 8, 16, 32)


def _mb(value: int) -> float:
    return round(value / 1e6, 1)


@paper_table("training_cost", f"Training cost of the seed networks at batch {TRAINING_BATCH} (fp32, SGD with momentum)",
             "archstat counts (mode='train'); no published figure")
def training_cost(options: ReportOptions) -> TableResult:
    import archstat

    rows = []
    for label, name in TRAINING_MODELS:
        stats = archstat.count(name, (TRAINING_BATCH, 3, 224, 224), mode="train", optimizer=TRAINING_OPTIMIZER)
        memory = stats.memory
        rows.append({"network": label, "model": name, "params (M)": round(stats.params / 1e6, 2),
                     "forward GMAdds": round(stats.madds / 1e9, 2),
                     "backward GMAdds": round(stats.backward_madds / 1e9, 2),
                     "fwd+bwd / fwd": round((stats.madds + stats.backward_madds) / stats.madds, 3),
                     "step GFLOPs": round(memory.step_flops / 1e9, 3), "saved (MB)": _mb(memory.saved_bytes),
                     "params+grads+state (MB)": _mb(memory.params_bytes + memory.grads_bytes + memory.state_bytes),
                     "peak (MB)": _mb(memory.peak_train_bytes), "peak in": memory.peak_phase})
    notes = [f"Input {TRAINING_BATCH}x3x224x224, float32, {TRAINING_OPTIMIZER}: counted on the meta device. "
             "Backward multiply-adds are twice the forward's, less the input gradient of the first convolution "
             "(the image needs none): fwd+bwd / fwd is just under 3, the '3x forward' rule of thumb. Memory is "
             "dominated by the activations saved for backward, which grow with the batch; parameters, gradients "
             "and the momentum buffer do not (archstat.training.memory)."]
    numeric = tuple(c for c in rows[0] if c not in ("network", "model", "peak in"))
    return TableResult(rows, list(rows[0]), numeric, notes)


@paper_table("training_peak", "Peak memory of a training step: estimated vs measured on this machine",
             "archstat.training.memory (estimate) and archstat.training.measure (a real step); no published figure")
def training_peak(options: ReportOptions) -> TableResult:
    import archstat
    from archstat.training.measure import measure_step

    rows = []
    for name in PEAK_MODELS:
        for batch in peak_batches(options):
            shape = (batch, 3, 224, 224)
            estimate = archstat.count(name, shape, mode="train", optimizer=TRAINING_OPTIMIZER)
            measured = measure_step(name, shape, optimizer=TRAINING_OPTIMIZER)
            rows.append({"model": name, "batch": batch, "estimated (MB)": _mb(estimate.peak_train_bytes),
                         "measured (MB)": _mb(measured.peak_bytes),
                         "estimated / measured": round(estimate.peak_train_bytes / measured.peak_bytes, 3),
                         "method": measured.method})
    notes = ["A real step on this machine's CPU (random weights, SGD with momentum, after a warm-up step so the "
             "momentum buffers exist), measured from the profiler's allocation events: tensor bytes, without "
             "allocator overhead; the estimate counts the same step on the meta device."]
    return TableResult(rows, list(rows[0]), ("batch", "estimated (MB)", "measured (MB)", "estimated / measured"),
                       notes)
