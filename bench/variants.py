"""Every variant at its defaults on SST-2 with the bundled MiniLM, same steps: one table.

Prints a Markdown table (test accuracy mean ± std over seeds, dev accuracy, trainable and
stored parameters, preliminary steps, s/step, peak memory) and, last, each variant's test
accuracy as a ratio of LoRA's, measured in the same run.

    python bench/variants.py [--steps 300] [--seeds 0] [--eval-samples 1000] [--variants a,b]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from lorasearch._quiet import quiet_libraries
from lorasearch.adapters import VARIANTS, Adapter, InjectContext, ParamCounts, build_adapter
from lorasearch.adapters.base import AdapterConfig, head_param_count
from lorasearch.errors import run_script
from lorasearch.training.tasks import data_root
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, run_trial


@dataclass
class FullConfig(AdapterConfig):
    lr: float = 5e-5  # the usual BERT fine-tuning rate


class FullFineTune(Adapter):
    """The reference row: every weight of the base trained (not an adapter; bench only)."""

    name = "full fine-tuning"
    config_class = FullConfig

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        for param in model.parameters():
            param.requires_grad_(True)
        return model

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        head = head_param_count(model, context.head_modules)
        total = sum(p.numel() for p in model.parameters())
        return ParamCounts(adapter=total - head, head=head, stored=total)

    def export(self, model: nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))


class HeadOnly(Adapter):
    """A reference row: the task head alone trained on the frozen base, a linear probe (not an
    adapter; bench only). It answers budgets below the smallest adapter."""

    name = "head only"
    config_class = AdapterConfig  # lr: a head learns at adapter rates, not full fine-tuning's

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        for name in context.head_modules:
            for param in getattr(model, name).parameters():
                param.requires_grad_(True)
        return model

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        head = head_param_count(model, context.head_modules)
        return ParamCounts(adapter=0, head=head, stored=head)

    def export(self, model: nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-full", action="store_true", help="skip the full fine-tuning row")
    args = parser.parse_args()
    quiet_libraries()

    data = DataConfig(task="sst2", data=str(data_root() / "sst2"), eval_samples=args.eval_samples)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    names = args.variants.split(",") + ([] if args.no_full else [FullFineTune.name])
    for variant in names:
        results = []
        for seed in seeds:
            trial = Trial(
                data=data,
                model=ModelConfig(),
                adapter=FullFineTune(FullConfig())
                if variant == FullFineTune.name
                else build_adapter(variant),
                # one dev score, at the end: the variants compared at equal steps
                train=TrainConfig(steps=args.steps, seed=seed, eval_every=args.steps),
            )
            results.append(run_trial(trial))
            r = results[-1]
            print(f"{variant} seed {seed}: test {r.test_metric:.4f}", file=sys.stderr, flush=True)
        rows[variant] = results

    print(
        f"\n{args.steps} steps, batch 32, max length 64, seeds {seeds}, dev = {args.eval_samples} of sst2/dev\n"
    )
    print(
        "| variant | test acc | dev acc | trainable (adapter + head) | stored | prelim. steps | s/step | peak MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for variant, results in rows.items():
        tests = [r.test_metric for r in results]
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        r = results[0]
        print(
            f"| {variant} | {statistics.mean(tests):.4f} ± {std:.4f} "
            f"| {statistics.mean(x.dev_metric for x in results):.4f} "
            f"| {r.trainable_params:,} ({r.adapter_params:,} + {r.head_params:,}) | {r.stored_params:,} "
            f"| {r.preliminary_steps} | {1 / statistics.mean(x.steps_per_second for x in results):.3f} "
            f"| {max(x.peak_memory_mb for x in results):,.0f} |"
        )
    if "lora" in rows:
        base = statistics.mean(r.test_metric for r in rows["lora"])
        ratios = ", ".join(
            f"{v} {statistics.mean(r.test_metric for r in rs) / base:.3f}" for v, rs in rows.items()
        )
        print(f"\ntest accuracy / LoRA's: {ratios}")


if __name__ == "__main__":
    run_script(main)
