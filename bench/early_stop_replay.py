"""Early stopping replayed offline: what each noise setting of the rule would save and cost.

Runs one study without early stopping (or reads a finished one: ``--storage``/``--study``), then
replays the rule of ``search/early_stop.py`` over the recorded dev curves in trial order, for
several ``z`` (standard errors a lead must exceed) and margins: a trial the rule stops uses the
steps up to that evaluation and leaves the front; the others finish as recorded. Prints each
trial's curve, then steps saved and hypervolume (as a ratio of the study's own) per setting.
Exact for deterministic trials (CPU, fixed seeds), and free once the study exists, so the
trade-off can be read at a trial length the full benchmark cannot afford.

    python bench/early_stop_replay.py [--trials 16] [--steps 60] [--eval-every 10]
        [--eval-samples 300] [--storage sqlite:///replay.db --study NAME]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from optuna.trial import TrialState

from lorasearch._quiet import quiet_libraries
from lorasearch.errors import run_script
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.early_stop import Finished, stop_reason
from lorasearch.search.objective import finished_trials
from lorasearch.search.pareto import hypervolume
from lorasearch.search.records import StudyRecord, trial_records
from lorasearch.search.storage import load_study
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.tracking import NoTracking
from lorasearch.training.tasks import data_root
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig

SETTINGS = [(z, margin) for z in (0.0, 0.5, 1.0, 1.5, 2.0) for margin in (0.0, 0.01)]


def replay(trials, finished: dict[int, Finished], dev_size: int, z: float, margin: float):
    """(steps used, trials that finish) under the rule with ``z`` and ``margin``; ``finished``
    is each trial as the rule sees it once finished (``finished_trials``)."""
    ahead, kept, used = [], [], 0
    for t in trials:
        mine = finished[t.number]
        stopped = next(
            (
                s
                for s in sorted(mine.curve)
                if stop_reason(s, mine.curve[s], mine.params, ahead, margin, dev_size, z)
            ),
            None,
        )
        if stopped is None:
            used += t.steps_used
            ahead.append(mine)
            kept.append(t)
        else:  # LoRA-drop's preliminary pass is in steps_used, beyond the curve's last step
            used += stopped + t.steps_used - max(mine.curve)
    return used, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-samples", type=int, default=300, help="dev examples")
    parser.add_argument("--storage", help="read this finished study instead of running one")
    parser.add_argument("--study", default="replay")
    args = parser.parse_args()
    quiet_libraries()
    with tempfile.TemporaryDirectory() as scratch:
        if args.storage:
            study = load_study(args.study, args.storage)
        else:
            fixed = Fixed(
                DataConfig(
                    task="sst2",
                    data=str(data_root() / "sst2"),
                    train_samples=8000,
                    eval_samples=args.eval_samples,
                ),
                ModelConfig(),
                TrainConfig(steps=args.steps, eval_every=args.eval_every),
            )
            search = SearchConfig(
                trials=args.trials,
                space=SearchSpace.default(),
                storage=f"sqlite:///{Path(scratch) / 'replay.db'}",
                study_name=args.study,
                early_stop=False,
            )
            study = run_search(fixed, search, tracker=NoTracking())
        record = StudyRecord.of(study)
        steps, dev_size = record.fixed.train.steps, record.fixed.data.eval_samples or 0
        chance, full = record.chance, record.full_params
        trials = trial_records(study, states=(TrialState.COMPLETE,))
        finished = {f.number: f for f in finished_trials(study)}
    print(f"{len(trials)} trials of {steps} steps, dev = {dev_size} examples\n")
    print("| trial | variant | trainable params | dev curve | best |")
    print("|---|---|---|---|---|")
    for t in trials:
        curve = " ".join(f"{v:.3f}" for _, v in sorted(finished[t.number].curve.items()))
        print(f"| {t.number} | {t.variant} | {int(t.values[1]):,} | {curve} | {t.values[0]:.3f} |")  # fmt: skip
    total = sum(t.steps_used for t in trials)
    whole = hypervolume(trials, chance, full)
    print("\n| z | margin | steps saved | hypervolume / without early stopping |")
    print("|---|---|---|---|")
    for z, margin in SETTINGS:
        used, kept = replay(trials, finished, dev_size, z, margin)
        ratio = hypervolume(kept, chance, full) / whole if whole else 0.0
        print(f"| {z} | {margin} | {1 - used / total:.1%} | {ratio:.3f} |")


if __name__ == "__main__":
    run_script(main)
