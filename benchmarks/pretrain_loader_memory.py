"""Memory of the pretraining loader's workers: forked from the trainer (the old way) against forked
from a fork server (`clean_worker_context`, what `PretrainDataModule` uses), in the same process,
after the same training steps.

A trainer that has trained holds a heap of freed activation memory. A worker forked from it shares
those pages and, as it decodes clips and computes features, writes into them: each written page
becomes the worker's own copy. On 2 CPU cores a `pretrain-tiny` validation worker forked at step 40
grew from 0.6 to 1.1 GB of its own memory, and three workers forked near the end of a 1,200-step
run, beside a second run, let the kernel's OOM killer stop that run. This script trains the bundled
`tiny-heard` for `--steps` steps in this process (the recipe's losses, AdamW), then reads
`--batches` training batches and the validation batches through one worker under each start
method, sampling the worker's unique memory (USS: pages no other process shares) as it goes.

    python -m benchmarks.pretrain_loader_memory                      # 20 steps at batch 32
    python -m benchmarks.pretrain_loader_memory --steps 5 --batches 4   # a quick look
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
from unittest import mock

import psutil
import torch

from benchmarks.pretrain_step import step
from slu_lightning.data.asr_corpus import default_asr_dir, make_asr_corpus
from slu_lightning.pretrain import data as pretrain_data
from slu_lightning.pretrain.data import PretrainDataModule
from slu_lightning.pretrain.module import TinyPretrainModule

GB = 1e9
START_METHODS = {  # how each reading's workers start
    "fork": lambda: multiprocessing.get_context("fork"),
    "forkserver": pretrain_data.clean_worker_context,
}


class WorkerMemory:
    """Peak USS and RSS of this process's loader workers (`pt_data_worker`), sampled in a thread."""

    def __init__(self, every: float = 0.1) -> None:
        self.every, self.peak_uss, self.peak_rss = every, 0, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> WorkerMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(self.every):
            for process in psutil.Process().children(recursive=True):
                try:
                    if process.name() == "pt_data_worker":
                        memory = process.memory_full_info()
                        self.peak_uss = max(self.peak_uss, memory.uss)
                        self.peak_rss = max(self.peak_rss, memory.rss)
                except psutil.Error:  # the worker exited between listing and reading
                    continue


def data_module(module: TinyPretrainModule, corpus, batch_size: int) -> PretrainDataModule:
    """The recipe's data module with one worker, its train loader at epoch 0 from the first batch."""
    data = PretrainDataModule(module.collator, corpus=corpus, batch_size=batch_size, num_workers=1)
    data.setup("fit")
    data.trainer = mock.Mock(current_epoch=0, global_step=0, fit_loop=None)
    return data


def train(module: TinyPretrainModule, data: PretrainDataModule, steps: int) -> None:
    """``steps`` training steps in this process, batches loaded without workers."""
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    data.num_workers = 0
    with mock.patch.object(pretrain_data, "resume_batch", return_value=0):
        batches = iter(data.train_dataloader())
        for _ in range(steps):
            step(module, next(batches), optimizer)
    data.num_workers = 1


def read(data: PretrainDataModule, start_method: str, batches: int) -> tuple[WorkerMemory, float, float]:
    """Workers' peak memory, seconds to the first batch and seconds in all, reading ``batches``
    training batches and then every validation batch."""
    with (
        mock.patch.object(pretrain_data, "clean_worker_context", START_METHODS[start_method]),
        mock.patch.object(pretrain_data, "resume_batch", return_value=0),
        WorkerMemory() as memory,
    ):
        start = time.perf_counter()
        train_batches = iter(data.train_dataloader())
        next(train_batches)
        first = time.perf_counter() - start
        for _ in range(batches - 1):
            next(train_batches)
        del train_batches
        for _ in data.val_dataloader():
            pass
        total = time.perf_counter() - start
    return memory, first, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps before reading")
    parser.add_argument("--batches", type=int, default=16, help="training batches read per method")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--corpus-size", default="small", help="ASR corpus: tiny, small or large")
    args = parser.parse_args()
    torch.manual_seed(0)
    module = TinyPretrainModule(backbone="tiny-heard")
    corpus = make_asr_corpus(default_asr_dir(args.corpus_size, 0), size=args.corpus_size, seed=0)
    data = data_module(module, corpus, args.batch_size)
    train(module, data, args.steps)
    trainer = psutil.Process().memory_full_info()
    print(
        f"trainer after {args.steps} steps at batch {args.batch_size}: "
        f"RSS {trainer.rss / GB:.2f} GB, USS {trainer.uss / GB:.2f} GB; "
        f"{args.batches} training batches + {len(data.val)} validation clips per method, one worker"
    )
    print("| start method | worker peak USS (GB) | worker peak RSS (GB) | s to first batch | s in all |")
    print("| --- | --- | --- | --- | --- |")
    figures = {}
    for start_method in START_METHODS:
        memory, first, total = read(data, start_method, args.batches)
        figures[start_method] = memory.peak_uss
        print(
            f"| {start_method} | {memory.peak_uss / GB:.2f} | {memory.peak_rss / GB:.2f} "
            f"| {first:.1f} | {total:.1f} |"
        )
    print(f"fork / forkserver worker USS: {figures['fork'] / max(figures['forkserver'], 1):.1f}x")


if __name__ == "__main__":
    main()
