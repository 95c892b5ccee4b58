"""The training loop: random augmented crops, balanced losses per head, Adam, checkpoints that
an interrupted run resumes from (to the same weights as an uninterrupted one), validation, and
export of the final model with its card.

Files in ``out_dir``: ``checkpoint.pt`` (weights, optimizer and random states, the iteration),
``log.jsonl`` (one line per logged iteration and per validation), ``best.pt`` (the weights of
the best validation so far, when ``keep_best`` names a metric) and, once the run completes,
``model.pt`` + ``model.json`` (the best-validated weights if kept, the averaged weights if
averaged, else the last). A run that stops early leaves no ``model.pt``.

Validation scores of a network still in training swing by 2x from one check to the next, so the
learning rate decays (cosine, a pure function of the iteration: resuming needs no scheduler
state) and the exported weights are those that validated best, or the mean of the weights
over the last part of the run (``average_from``: stochastic weight averaging, Izmailov et al.
2018), which on a small training set generalises better than any single snapshot.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import models
from ..core import resolve_threads
from ..models.card import Normalization
from .augment import Augment
from .data import Sampler
from .loss import head_loss


@dataclass(frozen=True)
class TrainConfig:
    patch_shape: tuple[int, int, int] = (92, 92, 36)  # input patch [x, y, z] (made valid)
    iterations: int = 2000
    batch_size: int = 1
    learning_rate: float = 5e-4
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 10
    validate_every: int = 0  # 0: only at the end (if a validation function is given)
    schedule: str = "cosine"  # learning rate: "cosine" (decays to final_lr_fraction) or "constant"
    final_lr_fraction: float = 0.05
    keep_best: str | None = None  # a validation metric to minimise, e.g. "voi": export its best weights
    average_from: float = 0.0  # > 0: export the mean weights of every average_every-th step from here on
    average_every: int = 20  # (average_from is a fraction of the iterations, e.g. 0.5: the last half)
    synapse_focus: float = 0.0  # fraction of crops centred on a synapse (see Sampler)
    head_weights: dict = field(default_factory=dict)  # head name -> loss weight (default 1)
    unbalanced_heads: tuple = ()  # sigmoid heads trained with plain BCE (see train.loss)
    positive_weights: dict = field(default_factory=dict)  # sigmoid head -> BCE weight of its positives
    augment: Augment = field(default_factory=Augment)
    threads: int | None = None


def _tensor(a: np.ndarray, dtype=None):
    """(c, x, y, z) or (x, y, z) numpy -> (c, z, y, x) or (z, y, x) torch, contiguous."""
    import torch

    axes = tuple(range(a.ndim - 3)) + (a.ndim - 1, a.ndim - 2, a.ndim - 3)
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(axes)))
    return t if dtype is None else t.to(dtype)


def _save_atomic(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """Trains ``net`` (a :class:`voxelytics.models.UNet`, or a :class:`UNetConfig` to build one)
    on crops of ``sources`` into ``out_dir``.

    ``init``: a saved model (``.pt`` with its card) whose weights start the training, for
    fine-tuning (its architecture must be the network's). ``validate``: a function of the
    network (in eval mode) returning a dict of metrics, run every ``validate_every`` iterations
    and at the end; the last result goes into the model card."""

    def __init__(
        self,
        net,
        sources,
        out_dir,
        config: TrainConfig | None = None,
        *,
        name: str = "model",
        voxel_size=None,
        normalization: Normalization | None = None,
        init=None,
        validate=None,
        synapse_options: dict | None = None,
        progress: bool = True,
    ):
        import torch

        self.config = config or TrainConfig()
        torch.manual_seed(self.config.seed)  # before a network built here draws its initial weights
        self.net = net if isinstance(net, models.UNet) else models.UNet(net)
        self.sources = list(sources)
        self.out_dir = Path(out_dir)
        self.name = name
        self.voxel_size = tuple(voxel_size or self.sources[0].voxel_size)
        self.normalization = normalization or Normalization()
        self.validate = validate
        self.progress = progress
        self.init = None if init is None else str(init)
        self.sampler = Sampler(
            self.sources,
            self.net.config,
            self.config.patch_shape,
            augment=self.config.augment,
            normalization=self.normalization,
            synapse_options=synapse_options,
            synapse_focus=self.config.synapse_focus,
        )
        torch.manual_seed(self.config.seed)
        if init is not None:
            loaded, card = models.load(init)
            if models.config_from_card(card) != self.net.config:
                raise ValueError(f"init model {init} has another architecture than the network to train")
            self.net.load_state_dict(loaded.state_dict())
        sigmoid_heads = {h.name for h in self.net.config.heads if h.activation == "sigmoid"}
        for key in ("unbalanced_heads", "positive_weights"):
            unknown = sorted(set(getattr(self.config, key)) - sigmoid_heads)
            if unknown:
                raise ValueError(
                    f"TrainConfig.{key} names {unknown}: not sigmoid heads of the network "
                    f"(those are {sorted(sigmoid_heads)})"
                )
        if self.config.keep_best is not None and validate is None:
            raise ValueError(f"TrainConfig.keep_best={self.config.keep_best!r} needs a validate function")
        if self.config.schedule not in ("cosine", "constant"):
            raise ValueError(
                f"TrainConfig.schedule must be 'cosine' or 'constant', got {self.config.schedule!r}"
            )
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate)
        self.rng = np.random.default_rng(self.config.seed)
        self.iteration = 0
        self.metrics: dict = {}
        self.best: dict | None = None  # {"iteration", "metrics"} of the best validation kept
        self.average: dict | None = None  # running mean of the weights (average_from > 0)
        self.averaged = 0  # snapshots in it
        if not 0.0 <= self.config.average_from < 1.0:
            raise ValueError(f"TrainConfig.average_from must be in [0, 1), got {self.config.average_from}")
        if self.config.average_from and self.config.keep_best is not None:
            raise ValueError(
                "TrainConfig.average_from and keep_best each choose the exported weights: use one"
            )

    def learning_rate(self, iteration: int) -> float:
        """The learning rate of step ``iteration`` (0-based)."""
        c = self.config
        if c.schedule == "constant":
            return c.learning_rate
        t = min(iteration / max(c.iterations, 1), 1.0)
        f = c.final_lr_fraction
        return c.learning_rate * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * t)))

    @property
    def best_path(self) -> Path:
        return self.out_dir / "best.pt"

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def _checkpoint(self) -> None:
        import torch

        _save_atomic(
            {
                "iteration": self.iteration,
                "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "numpy_rng": self.rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "metrics": self.metrics,
                "best": self.best,
                "average": self.average,
                "averaged": self.averaged,
            },
            self.checkpoint_path,
        )

    def _resume(self) -> bool:
        import torch

        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, weights_only=False)
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.iteration = int(state["iteration"])
        self.metrics = state["metrics"]
        self.best = state.get("best")
        self.average, self.averaged = state.get("average"), state.get("averaged", 0)
        return True

    def _accumulate_average(self) -> None:
        """Adds the current weights to the running mean when this step is one of its snapshots."""
        c = self.config
        start = math.ceil(c.average_from * c.iterations)
        if not c.average_from or self.iteration < start or (self.iteration - start) % c.average_every:
            return
        weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        if self.average is None:
            self.average = weights
        else:
            for k, v in weights.items():
                self.average[k] += (v - self.average[k]) / (self.averaged + 1)
        self.averaged += 1

    def _log(self, record: dict) -> None:
        with open(self.out_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def step(self) -> dict[str, float]:
        """One optimisation step on a fresh batch; returns the losses (total and per head)."""
        import torch

        samples = [self.sampler.sample(self.rng) for _ in range(self.config.batch_size)]
        image = torch.stack([_tensor(s["image"]) for s in samples])
        self.net.train()
        logits = self.net.logits(image)
        losses, total = {}, 0.0
        for h, (first, count, _) in zip(self.net.config.heads, self.net.spans):
            part = logits[:, first : first + count]
            if h.activation == "softmax":
                target = torch.stack([_tensor(s[h.name], torch.int64) for s in samples])
                mask = None
            else:
                target = torch.stack([_tensor(s[h.name]) for s in samples])
                mask = torch.stack([_tensor(s[h.name + "_mask"]) for s in samples])
            loss = head_loss(
                h.activation,
                part,
                target,
                mask,
                h.name not in self.config.unbalanced_heads,
                self.config.positive_weights.get(h.name),
            )
            losses[h.name] = float(loss.detach())
            total = total + self.config.head_weights.get(h.name, 1.0) * loss
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.iteration)
        self.optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        losses["total"] = float(total.detach())
        return losses

    def run(self):
        """Trains to ``config.iterations`` (resuming from a checkpoint in ``out_dir`` if there is
        one), then saves the model and its card; returns the card."""
        import torch
        from tqdm import tqdm

        self.out_dir.mkdir(parents=True, exist_ok=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(resolve_threads(self.config.threads))
        try:
            resumed = self._resume()
            c = self.config
            bar = tqdm(
                total=c.iterations,
                initial=self.iteration,
                desc="training",
                unit="it",
                disable=not self.progress,
            )
            start = time.perf_counter()
            while self.iteration < c.iterations:
                losses = self.step()
                self.iteration += 1
                bar.update(1)
                bar.set_postfix(loss=f"{losses['total']:.4f}")
                self._accumulate_average()
                if self.iteration % c.log_every == 0 or self.iteration == c.iterations:
                    self._log({"iteration": self.iteration, "seconds": time.perf_counter() - start, **losses})
                if self.validate is not None and c.validate_every and self.iteration % c.validate_every == 0:
                    self._run_validation()
                if self.iteration % c.checkpoint_every == 0:
                    self._checkpoint()
            bar.close()
            self._checkpoint()
            if self.average is not None:  # the averaged weights are what is validated and exported
                self.net.load_state_dict(self.average)
            final_checked = c.validate_every and not c.iterations % c.validate_every
            if self.validate is not None and (self.average is not None or not final_checked):
                self._run_validation()
            if self.best is not None:
                self.net.load_state_dict(torch.load(self.best_path, weights_only=True))
                self.metrics = self.best["metrics"]
            training = {
                "iterations": c.iterations,
                "batch_size": c.batch_size,
                "learning_rate": c.learning_rate,
                "schedule": c.schedule,
                "seed": c.seed,
                "patch_shape": list(self.sampler.patch),
                "augment": asdict(c.augment),
                "synapse_focus": c.synapse_focus,
                "sources": [s.name for s in self.sources],
                "init": self.init,
                "resumed": resumed,
                "exported_iteration": self.best["iteration"] if self.best else c.iterations,
                "averaged_snapshots": self.averaged,
            }
            return models.save(
                self.net,
                self.out_dir / "model.pt",
                name=self.name,
                voxel_size=self.voxel_size,
                patch_shape=self.sampler.patch,
                normalization=self.normalization,
                training=training,
                metrics=self.metrics,
            )
        finally:
            torch.set_num_threads(threads)

    def _run_validation(self) -> None:
        self.net.eval()
        self.metrics = {k: float(v) for k, v in self.validate(self.net).items()}
        self._log({"iteration": self.iteration, "validation": self.metrics})
        key = self.config.keep_best
        if key is None:
            return
        if key not in self.metrics:
            raise KeyError(
                f"TrainConfig.keep_best={key!r} is not a validation metric (got {sorted(self.metrics)})"
            )
        if self.best is None or self.metrics[key] < self.best["metrics"][key]:
            _save_atomic(self.net.state_dict(), self.best_path)
            self.best = {"iteration": self.iteration, "metrics": dict(self.metrics)}
