"""Which pieces of the pretraining recipe keep text-to-speech transfer: an ablation from `tiny-heard`.

Every arm continues the bundled stand-in for the same ``--steps`` on the same batches (seed 0) with
the six-task recipe it was made by, one piece switched off; ``all`` switches nothing off and is the
control. Each export is measured (word error rates, two read-outs, held-out voices), then
fine-tuned on text only with the demo config and tested on speech, as the demo grid's text-only
cell (``configs/demo/text_only.yaml`` + ``configs/backbones/pretrained_tiny.yaml``), once per
``--seeds`` (batch order; each arm is pretrained once). Everything resumes: a finished pretraining
arm or fine-tuning cell is skipped.

    python -m benchmarks.pretrain_ablation --steps 150 --seeds 0,1,2 --jobs 2

prints the recognition table; the transfer tables are the report the script then writes, as
``slu-lightning report --root <root>/finetune --baseline model.init_args.backbone=all`` would.

The recognition-side pieces (sinusoid positions, lexically varied text, augmentation) act from
step 0 of a fresh model and cannot be ablated by continuing one; they are not arms here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from slu_lightning.atomic import atomic_write_text
from slu_lightning.data.asr_corpus import default_asr_dir
from slu_lightning.experiments import report
from slu_lightning.experiments.report.tables import markdown_table
from slu_lightning.experiments.sweep import SweepSpec, run_sweep
from slu_lightning.pretrain.asr_eval import error_rates_by_set
from slu_lightning.pretrain.module import TinyPretrainModule

SIX_TASKS = "transcribe,json,first_words,last_word,count,reverse"
ARMS: dict[str, list[str]] = {
    "all": [],
    "no-distill": ["--distill-weight", "0"],
    "no-align": ["--align-weight", "0"],
    "no-read": ["--read-weight", "0"],
    "transcribe-only": ["--audio-tasks", "transcribe"],
}
"""Arm name -> the pretrain-tiny flags that switch its piece off (after the shared ones)."""


def recipe(args: argparse.Namespace) -> list[str]:
    """The shared pretrain-tiny flags: tiny-heard's last stage, restarted for ``--steps``."""
    return [
        *("--backbone", "tiny-heard", "--steps", str(args.steps), "--lr", str(args.lr)),
        *("--warmup-steps", "10", "--hear-steps", "0", "--audio-tasks", SIX_TASKS, "--read-weight", "1"),
        *("--val-every", str(args.steps // 2), "--eval-clips", str(args.eval_clips)),
        *("--checkpoint-minutes", "3"),
    ]


def pretrain(root: Path, arm: str, args: argparse.Namespace) -> Path:
    """Run (or resume, or skip if exported) one arm; return its backbone directory."""
    out = root / "backbones" / arm
    if not (out / "pretraining.json").is_file():
        command = [sys.executable, "-m", "slu_lightning.cli", "pretrain-tiny", *recipe(args), *ARMS[arm]]
        command += ["--run-dir", str(root / "runs" / arm), "--out", str(out)]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    return out


def starting_rates(root: Path, eval_clips: int) -> dict:
    """tiny-heard's own error rates on the arms' evaluation sets (its card's are on 240 clips a set,
    another sample), kept in ``<root>/tiny-heard-rates-<clips>.json``."""
    path = root / f"tiny-heard-rates-{eval_clips}.json"
    if not path.is_file():
        module = TinyPretrainModule(backbone="tiny-heard").eval()
        rates = error_rates_by_set(module, default_asr_dir("large", 0), eval_clips, seed=0)
        atomic_write_text(path, json.dumps(rates, indent=2) + "\n")
    return json.loads(path.read_text(encoding="utf-8"))


VALIDATION = ("val/asr", "val/distill", "val/input_gain", "val/ctc_wer")
"""Last-validation figures shown per arm: the decoder's ASR loss, the audio-vs-text hidden-state
distance under the pretraining prompts, how much the LLM uses its text input, the CTC read-out."""


def last_validation(run_dir: Path) -> list[str]:
    """The arm's ``VALIDATION`` scalars at its last validation (TensorBoard); "—" for a loss the
    arm switched off (not computed)."""
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    logged = events.Tags()["scalars"]
    return [f"{events.Scalars(tag)[-1].value:.3f}" if tag in logged else "—" for tag in VALIDATION]


def recognition_table(start: dict, root: Path, arms: list[str]) -> str:
    """Markdown: tiny-heard's and each arm's word/character error rates (arms: their model cards)
    and last validation figures."""
    header = ["arm", "general: CTC WER / CER", "general: decoder WER / CER", "SLU-phrased: CTC"]
    header += ["SLU-phrased: decoder", *VALIDATION]
    rows = []
    rates = {"tiny-heard (start)": start}
    rates |= {
        arm: json.loads((root / "backbones" / arm / "pretraining.json").read_text())["error_rates"]
        for arm in arms
    }
    for arm, rate in rates.items():
        cells = [
            f"{rate[name][readout]['wer']:.3f} / {rate[name][readout]['cer']:.3f}"
            for name in ("heldout", "slu-phrased")
            for readout in ("ctc", "decoder")
        ]
        if arm in arms:
            cells += last_validation(root / "runs" / arm)
        else:
            cells += ["—"] * len(VALIDATION)
        rows.append([arm, *cells])
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("logs/ablation/pretrain-pieces"))
    parser.add_argument("--steps", type=int, default=150, help="pretraining steps per arm (batch 32)")
    parser.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (cosine to 0)")
    parser.add_argument("--eval-clips", type=int, default=120, help="clips per WER set")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, of {', '.join(ARMS)}")
    parser.add_argument("--seeds", default="0", help="fine-tuning seeds (seed_everything), comma-separated")
    parser.add_argument("--jobs", type=int, default=1, help="fine-tuning cells run at once")
    args = parser.parse_args()
    unknown = sorted(set(args.arms.split(",")) - set(ARMS))
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {', '.join(ARMS)}")
    backbones = {arm: pretrain(args.root, arm, args) for arm in args.arms.split(",")}
    print(
        recognition_table(starting_rates(args.root, args.eval_clips), args.root, list(backbones)), flush=True
    )
    spec = SweepSpec(
        base=Path("configs/demo/text_only.yaml"),
        root=args.root / "finetune",
        axes={
            "model.init_args.backbone": [str(path) for path in backbones.values()],
            "seed_everything": [int(seed) for seed in args.seeds.split(",")],
        },
        configs=[Path("configs/backbones/pretrained_tiny.yaml")],
    )
    failed = run_sweep(spec, Path(__file__), jobs=args.jobs)
    if failed:
        raise SystemExit(f"fine-tuning failed for {', '.join(failed)}")
    baseline = ["--baseline", "model.init_args.backbone=all"] if "all" in backbones else []
    report.main(["--root", str(spec.root), "--out", str(args.root / "report"), *baseline])


if __name__ == "__main__":
    main()
