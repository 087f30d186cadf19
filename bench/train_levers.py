"""fp32 training throughput levers on the CPU: the `tiny` preset's step, variants alternated.

    python bench/train_levers.py --data runs/kjv/data                       # every variant
    python bench/train_levers.py --data D --variants base,threads1,foreach --rounds 6 --steps 20
    python bench/train_levers.py --data D --profile                         # where a step goes

One process builds the `tiny` model (forced to fp32) and times optimiser steps on real KJV
windows (the preset's verse windows), each variant in turn for ``--steps`` steps per round,
``--rounds`` rounds (A B C A B C ...; the first round is warm-up and not counted). Each variant
starts from the same weights and optimiser state, so the figures compare the step alone. Prints
one JSON line per variant: median tokens/s and the ratio to ``base`` measured in the same rounds,
with the CPU's flags (``common.cpu_flags``). ``--profile``: torch.profiler's operator table of
``--steps`` base steps (self CPU time), as JSON lines.

Variants (a lever each, everything else as in ``base``):

* ``base``: the preset as `pocketlm train` runs it: batch 64, torch's default threads, AdamW
  (torch's fused kernel), oneDNN enabled (torch's default);
* ``threads1``: ``torch.set_num_threads(1)``; ``interop1``: one inter-op thread;
* ``no_mkldnn``: ``torch.backends.mkldnn`` disabled (shows whether the LSTM uses oneDNN);
* ``foreach``: AdamW ``foreach=True`` (the kernel training used before the fused one);
* ``batch128``/``batch256``: more rows per step (tokens/s; the learning rate is not timed);
* ``compile``: ``torch.compile`` of the loss network (compile time reported, not counted).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import cpu_flags, emit, machine  # noqa: E402

VARIANTS = ("base", "threads1", "interop1", "no_mkldnn", "foreach", "batch128", "batch256",
            "compile")


class Stepper:
    """One variant: its model, optimiser and windows; ``run(n)`` takes n optimiser steps and
    returns tokens/s."""

    def __init__(self, name: str, data: Path, seed_model: Any, config: Any) -> None:
        from pocketlm.pipeline.batches import LineWindows
        from pocketlm.pipeline.ingest import load_split
        from pocketlm.pipeline.recipe import LossNet, make_optimizer
        from pocketlm.runtime.artifact import EOS_ID

        self.name = name
        batch = {"batch128": 128, "batch256": 256}.get(name, config.batch_size)
        self.model = copy.deepcopy(seed_model)
        self.model.train()
        self.optimizer = make_optimizer(self.model, config)
        if name == "foreach":
            groups = [{"params": g["params"], "weight_decay": g["weight_decay"]}
                      for g in self.optimizer.param_groups]
            self.optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99),
                                               foreach=True)
        net: Any = LossNet(self.model)
        self.compile_seconds = None
        if name == "compile":
            net = torch.compile(net)
        self.net = net
        ids = load_split(data, "train")
        starts = np.flatnonzero(np.asarray(ids[:-1]) == EOS_ID)
        self.rows = LineWindows(ids, batch, starts, config.seed)
        self.bptt, self.clip = config.bptt, config.clip
        self.position, self.index = 0, 0
        self.threads = {"threads1": 1}.get(name)
        self.mkldnn = name != "no_mkldnn"

    def run(self, steps: int) -> float:
        default_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        tokens = 0
        try:
            with torch.backends.mkldnn.flags(enabled=self.mkldnn):
                t0 = time.perf_counter()
                for _ in range(steps):
                    if self.rows.done(self.position):
                        self.position, self.index = 0, 0
                    x, y = self.rows.window(self.position, self.bptt, torch.device("cpu"),
                                            index=self.index, epoch=1)
                    state = self.model.init_state(self.rows.rows, torch.device("cpu"))
                    loss, _ = self.net(x, y, state, False, 0.0)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
                    self.optimizer.step()
                    self.position += y.shape[1]
                    self.index += 1
                    tokens += y.numel()
                seconds = time.perf_counter() - t0
        finally:
            torch.set_num_threads(default_threads)
        return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="ingest folder (KJV)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=15, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the first is warm-up)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    from pocketlm.pipeline.model import RNNLM
    from pocketlm.pipeline.config import preset
    from pocketlm.runtime.artifact import read_manifest

    cpu = cpu_flags()
    emit("machine", **machine("cpu"))
    config = preset("tiny", precision="fp32", device="cpu")
    vocab = int(read_manifest(args.data, "data")["vocab_size"])
    torch.manual_seed(config.seed)
    seed_model = RNNLM(config.model_config(vocab))
    if args.profile:
        _profile(Stepper("base", args.data, seed_model, config), args.steps, cpu)
        return
    names = [n for n in args.variants.split(",") if n]
    if "base" not in names:
        names.insert(0, "base")
    steppers = {n: Stepper(n, args.data, seed_model, config) for n in names}
    if "compile" in steppers:
        t0 = time.perf_counter()
        steppers["compile"].run(2)
        steppers["compile"].compile_seconds = round(time.perf_counter() - t0, 1)
    speeds: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(args.rounds):
        for name, stepper in steppers.items():
            speed = stepper.run(args.steps)
            if round_:
                speeds[name].append(speed)
    base = speeds["base"]
    for name in names:
        ratios = [s / b for s, b in zip(speeds[name], base)]
        emit("lever", cpu=cpu, variant=name, precision="fp32", steps=args.steps,
             rounds=args.rounds - 1, tokens_per_s=round(statistics.median(speeds[name])),
             ratio_to_base=round(statistics.median(ratios), 3),
             all_tokens_per_s=[round(s) for s in speeds[name]],
             compile_seconds=steppers[name].compile_seconds,
             threads=1 if name == "threads1" else torch.get_num_threads())


def _profile(stepper: Stepper, steps: int, cpu: dict[str, Any]) -> None:
    from torch.profiler import ProfilerActivity, profile

    stepper.run(3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        stepper.run(steps)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    for e in rows[:25]:
        emit("profile", cpu=cpu, op=e.key, calls=e.count,
             self_ms_per_step=round(e.self_cpu_time_total / 1000 / steps, 3),
             share=round(e.self_cpu_time_total / total, 4))


if __name__ == "__main__":
    main()
