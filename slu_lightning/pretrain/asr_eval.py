"""Word and character error rates of a stand-in backbone, read out two ways: greedy CTC over the audio
vectors, and the LLM decoder prompted to transcribe. Evaluated on held-out voices, on general
sentences (the ASR corpus's ``heldout`` split) and on sentences phrased like the SLU domain (the
demo corpus's test split: templates and voices never used in pretraining), and on the general
sentences spoken by voices outside the family every split's voices come from. ``transcribe`` also
offers a third read-out: the CTC beam and the decoder's beam, rescored by both (``rescoring.py``)."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from tqdm import tqdm

from slu_lightning.data.collate import pad_rows
from slu_lightning.data.datamodules import SLUDataset
from slu_lightning.data.demo_corpus import Size, default_demo_dir, make_demo_corpus
from slu_lightning.data.features import LogMelExtractor
from slu_lightning.data.readers.manifest import read_manifest
from slu_lightning.data.records import SLUExample
from slu_lightning.data.respeak import in_unheard_voices, speak
from slu_lightning.evaluation.error_rates import corpus_cer, corpus_wer
from slu_lightning.pretrain.data import heldout_sample
from slu_lightning.pretrain.domain_lm import LMFusion, require_fused_readout
from slu_lightning.pretrain.module import TinyPretrainModule
from slu_lightning.pretrain.rescoring import DECODER_BEAMS, rescored_transcripts

CARD_READOUTS = ("ctc", "decoder")
"""The read-outs a model card states: greedy CTC and the greedy decoder."""
READOUTS = (*CARD_READOUTS, "rescored")
"""Every read-out ``transcribe`` offers; ``rescored`` is ``pretrain/rescoring.py``'s."""


@torch.no_grad()
def decoder_transcripts(
    module: TinyPretrainModule,
    batch: dict,
    clips: list[torch.Tensor],
    max_new_tokens: int = 48,
    beams: int = 1,
) -> list[str]:
    """Transcripts from the LLM decoder, given the transcription prompt and each clip's audio
    vectors (``clips``, of ``batch``): greedy, or the ``beams`` best of a beam search per clip, clip
    after clip."""
    collator, model = module.collator, module.model
    prompts = [collator.student_prompt(int(n)) for n in batch["feature_attention_mask"].sum(-1)]
    ids, mask = pad_rows(prompts, collator.pad_id, left=True)  # (batch, tokens)
    ids, mask = ids.to(module.device), mask.to(module.device)
    embeds = module.embed_with_audio(ids, clips)
    tokenizer = module.processor.tokenizer
    output = model.generate(
        inputs_embeds=embeds,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=beams,
        num_return_sequences=beams,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.batch_decode(output, skip_special_tokens=True)


def transcribe(
    module: TinyPretrainModule,
    examples: list[SLUExample],
    readouts: str | tuple[str, ...] = CARD_READOUTS,
    batch_size: int = 32,
    fusion: LMFusion | None = None,
) -> dict[str, list[str]]:
    """Transcripts of ``examples``' clips by each read-out in ``readouts``, in order; a ``fusion``
    joins a domain language model to the ``rescored`` read-out."""
    readouts = (readouts,) if isinstance(readouts, str) else readouts
    unknown = sorted(set(readouts) - set(READOUTS))
    if unknown:
        raise ValueError(f"unknown read-outs {unknown}; choose from {READOUTS}")
    if fusion is not None:
        require_fused_readout(readouts)
    module.eval()
    dataset = SLUDataset([(example, True) for example in examples], clip_features(module))
    hypotheses: dict[str, list[str]] = {readout: [] for readout in readouts}
    for start in tqdm(range(0, len(dataset), batch_size), desc="transcribing", unit="batch"):
        batch = module.collator([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        batch = move_data_to_device(batch, module.device)
        for readout, written in _read_batch(module, batch, readouts, fusion).items():
            hypotheses[readout] += written
    return hypotheses


def _read_batch(
    module: TinyPretrainModule, batch: dict, readouts: tuple[str, ...], fusion: LMFusion | None
) -> dict[str, list[str]]:
    """One batch's transcripts by each of ``readouts``, from one pass of the audio encoder."""
    clips = module.audio_clips(batch)
    read = {
        "ctc": lambda: module.ctc_transcripts(clips),
        "decoder": lambda: decoder_transcripts(module, batch, clips),
        "rescored": lambda: rescored_transcripts(
            module, batch, clips, _decoder_beams(module, batch, clips), fusion=fusion
        ),
    }
    return {readout: read[readout]() for readout in readouts}


def _decoder_beams(module: TinyPretrainModule, batch: dict, clips: list[torch.Tensor]) -> list[list[str]]:
    """The decoder's ``DECODER_BEAMS`` best transcripts of each clip of ``batch``."""
    flat = decoder_transcripts(module, batch, clips, beams=DECODER_BEAMS)
    return [flat[i : i + DECODER_BEAMS] for i in range(0, len(flat), DECODER_BEAMS)]


def measure_error_rates(
    module: TinyPretrainModule, examples: list[SLUExample], batch_size: int = 32
) -> dict[str, dict]:
    """Word and character error rates of both read-outs on ``examples`` (clips with transcripts):
    ``{readout: {"wer": ..., "cer": ...}, "by_locale": {locale: {"clips": n, readout: {...}}}}``.
    Per locale because the stand-in hears its six languages unequally, which a cross-lingual run
    inherits."""
    hypotheses = transcribe(module, examples, CARD_READOUTS, batch_size)
    rows_by_locale: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        rows_by_locale.setdefault(example.locale, []).append(i)
    by_locale = {
        locale: {"clips": len(rows), **error_rates([examples[i] for i in rows], _pick(hypotheses, rows))}
        for locale, rows in sorted(rows_by_locale.items())
    }
    return {**error_rates(examples, hypotheses), "by_locale": by_locale}


def error_rates(examples: list[SLUExample], hypotheses: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """``{readout: {"wer": ..., "cer": ...}}`` of each read-out's transcripts of ``examples``."""
    references = [example.text for example in examples]
    return {
        readout: {"wer": corpus_wer(references, written), "cer": corpus_cer(references, written)}
        for readout, written in hypotheses.items()
    }


def _pick(hypotheses: dict[str, list[str]], rows: list[int]) -> dict[str, list[str]]:
    return {readout: [written[i] for i in rows] for readout, written in hypotheses.items()}


CARD_SETS = {
    "heldout": "general sentences (the ASR corpus's held-out split), held-out voices",
    "slu-phrased": "demo test utterances (SLU phrasing), held-out voices",
    "unheard-voices": "the heldout sentences, each spoken by an eSpeak variant outside the partition's "
    "voice family that pretraining never heard (`benchmarks/voice_probe.py` has them one by one)",
}
"""The sets a model card measures, and what each holds."""


def evaluation_sets(
    asr_corpus: Path, n: int, out_dir: Path, seed: int = 0, demo_size: Size = "small", extra_voices: int = 0
) -> dict[str, list[SLUExample]]:
    """The ``CARD_SETS`` of ``n`` clips each; ``unheard-voices`` is synthesised under ``out_dir`` (an
    empty folder), avoiding the voices ``--extra-voices extra_voices`` added to pretraining."""
    heldout = heldout_sample(asr_corpus, n, seed)
    unheard = in_unheard_voices(heldout, out_dir, extra_voices, seed)
    speak(out_dir, "unheard", unheard)
    return {
        "heldout": heldout,
        "slu-phrased": slu_phrased_sample(n, seed, demo_size),
        "unheard-voices": unheard,
    }


def slu_phrased_sample(n: int, seed: int = 0, demo_size: Size = "small") -> list[SLUExample]:
    """``n`` demo test utterances (SLU phrasing, held-out voices), the same for a given seed."""
    demo = make_demo_corpus(default_demo_dir(demo_size, seed), size=demo_size, seed=seed)
    slu = read_manifest(demo / "test.jsonl")
    return random.Random(f"wer-slu:{seed}").sample(slu, min(n, len(slu)))


def error_rates_by_set(
    module: TinyPretrainModule,
    asr_corpus: Path,
    n: int,
    seed: int = 0,
    demo_size: Size = "small",
    extra_voices: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """Both read-outs' error rates on each of ``evaluation_sets``: the figures a model card states."""
    with tempfile.TemporaryDirectory(prefix="slu-lightning-card-") as out_dir:
        sets = evaluation_sets(asr_corpus, n, Path(out_dir), seed, demo_size, extra_voices)
        return {name: measure_error_rates(module, examples) for name, examples in sets.items()}


def clip_features(module: TinyPretrainModule) -> LogMelExtractor:
    """The log-mel extractor that makes ``module``'s inputs from a clip."""
    return LogMelExtractor(n_mels=int(module.processor.feature_extractor.feature_size))
