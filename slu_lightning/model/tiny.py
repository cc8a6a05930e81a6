"""A tiny Qwen2-Audio-architecture backbone, built offline, that loads like the real 7B directory.

The tiny backbone exists so the whole toolkit runs on a laptop CPU: same model class, same
processor class (Whisper-style 128-mel features + a Qwen2-style tokenizer with the Qwen chat
template), saved with ``save_pretrained`` and loaded with ``from_pretrained``. Its byte-level BPE
tokenizer is trained on general multilingual text (CLDR names of places, languages, months and
units from Babel, and numbers spelled out by num2words), never on the SLU corpus, so dev/test
phrasings cannot leak into the vocabulary. A built backbone is cached under a key of its
configuration and of what its tokenizer is trained from (``tokenizer_inputs``), so new CLDR data,
another num2words or ``tokenizers``, or reworded prompts build a new one instead of reusing the old.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import torch

from slu_lightning.atomic import staging_dir
from slu_lightning.task import AUDIO_PLACEHOLDER, END_OF_TURN, PromptTemplate

SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
)
TOKENIZER_LOCALES = ("en_US", "fr_FR", "de_DE", "it_IT", "es_ES", "pt_PT", "nl_NL", "pl_PL")
TOKENIZER_LIBRARIES = ("babel", "num2words", "tokenizers")
"""The libraries that make the tokenizer's training text (babel, num2words) and train on it."""
# The chat template of Qwen2-Audio-7B-Instruct's processor (one audio placeholder per audio part).
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
    "<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if 'audio' in content or 'audio_url' in content %}{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: " + AUDIO_PLACEHOLDER + "\n{% elif 'text' in content %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyBackboneConfig:
    """Sizes of a tiny Qwen2-Audio. Defaults: ~4 M parameters, trainable on 2 CPU cores."""

    vocab_size: int = 2048
    """BPE vocabulary including the special tokens."""
    num_mel_bins: int = 128
    """Mel bins of the features, as Qwen2-Audio-7B (Whisper large-v3 style)."""
    encoder_dim: int = 192
    encoder_layers: int = 3
    encoder_heads: int = 4
    encoder_ffn_dim: int = 768
    llm_dim: int = 256
    llm_layers: int = 3
    llm_heads: int = 4
    llm_kv_heads: int = 2
    llm_ffn_dim: int = 768
    seed: int = 0
    """Seeds the random initial weights."""

    def key(self) -> str:
        """A short hash naming this configuration's cached directory: its sizes and seed, and what
        the tokenizer is trained from (``tokenizer_inputs``), which a cached directory must match."""
        named = {**asdict(self), "tokenizer": tokenizer_inputs()}
        return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()[:12]


TINY_PRESETS = {
    "tiny": TinyBackboneConfig(),
    # The "parameters spent on the audio side": twice the encoder layers, a wider encoder,
    # the same LLM: 8.9 M parameters (5.4 M of them audio, against 1.8 M), 17.8 MB in float16.
    "tiny-ear": TinyBackboneConfig(encoder_dim=256, encoder_layers=6, encoder_ffn_dim=1024),
    # For unit tests: a forward/backward takes milliseconds.
    "tiny-test": TinyBackboneConfig(
        vocab_size=1024,
        encoder_dim=32,
        encoder_layers=2,
        encoder_heads=2,
        encoder_ffn_dim=64,
        llm_dim=64,
        llm_layers=2,
        llm_heads=4,
        llm_kv_heads=2,
        llm_ffn_dim=128,
    ),
}


def cache_root() -> Path:
    """Where built backbones and corpora are cached (``$SLU_LIGHTNING_CACHE`` or ~/.cache)."""
    return Path(os.environ.get("SLU_LIGHTNING_CACHE", Path.home() / ".cache" / "slu-lightning"))


def general_text(max_number: int = 1000) -> list[str]:
    """Multilingual text that is not SLU data: CLDR display names, spelled-out numbers, and the
    default prompt wording (repeated so its words become single tokens and prompts stay short)."""
    from babel import Locale
    from num2words import num2words

    lines: list[str] = []
    for name in TOKENIZER_LOCALES:
        locale = Locale.parse(name)
        for table in (locale.territories, locale.languages, locale.currencies, locale.scripts):
            lines.extend(str(value).lower() for value in table.values())
        for context in ("format", "stand-alone"):
            lines.extend(str(v).lower() for v in locale.months[context]["wide"].values())
            lines.extend(str(v).lower() for v in locale.days[context]["wide"].values())
        lang = name.split("_")[0]
        lines.extend(num2words(n, lang=lang) for n in range(max_number))
        lines.extend(num2words(n, lang=lang, to="ordinal") for n in range(1, 40))
    template = PromptTemplate()
    lines.extend(
        [
            template.render_prompt("") + '{"scenario": "", "action": "", "entities": '
            '[{"type": "", "filler": ""}]}' + END_OF_TURN
        ]
        * 50
    )
    return lines


@cache
def tokenizer_inputs() -> dict[str, str]:
    """What the tokenizer is trained from besides the config: a digest of ``general_text()`` (Babel's
    CLDR data, num2words, the prompt wording) and the ``TOKENIZER_LIBRARIES`` versions. In the
    backbone's key and on its model card. Computed once per process (about 0.3 s)."""
    text = json.dumps(general_text(), ensure_ascii=False)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return {"text_sha256": digest, **{name: version(name) for name in TOKENIZER_LIBRARIES}}


def train_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer with Qwen's special tokens, wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(general_text(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={
            "audio_token": "<|AUDIO|>",
            "audio_bos_token": "<|audio_bos|>",
            "audio_eos_token": "<|audio_eos|>",
        },
        additional_special_tokens=list(SPECIAL_TOKENS),
        padding_side="left",
    )
    tokenizer.chat_template = QWEN2_AUDIO_CHAT_TEMPLATE
    return tokenizer


def tiny_model_config(config: TinyBackboneConfig, tokenizer):
    """The ``Qwen2AudioConfig`` of a tiny backbone for ``tokenizer``'s vocabulary."""
    from transformers import Qwen2AudioConfig

    return Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": config.num_mel_bins,
            "d_model": config.encoder_dim,
            "encoder_layers": config.encoder_layers,
            "encoder_attention_heads": config.encoder_heads,
            "encoder_ffn_dim": config.encoder_ffn_dim,
            "max_source_positions": 1500,  # 3000 mel frames (30 s) after the stride-2 conv
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": config.llm_dim,
            "num_hidden_layers": config.llm_layers,
            "num_attention_heads": config.llm_heads,
            "num_key_value_heads": config.llm_kv_heads,
            "intermediate_size": config.llm_ffn_dim,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": False,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )


def whisper_sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's fixed positional table; transformers leaves Qwen2-Audio's random and frozen."""
    log_increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length)[:, None] * inv_timescales[None, :]  # (length, channels / 2)
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)  # (length, channels)


def build_tiny_backbone(out_dir: str | Path, config: TinyBackboneConfig) -> Path:
    """Write a randomly initialised tiny backbone directory (model, processor, model card)."""
    from transformers import Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor, WhisperFeatureExtractor

    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(config.vocab_size)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random stream untouched
        torch.manual_seed(config.seed)
        model = Qwen2AudioForConditionalGeneration(tiny_model_config(config, tokenizer))
    positions = model.model.audio_tower.embed_positions
    positions.weight.data.copy_(whisper_sinusoids(*positions.weight.shape))
    feature_extractor = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    processor = Qwen2AudioProcessor(feature_extractor, tokenizer, chat_template=QWEN2_AUDIO_CHAT_TEMPLATE)
    staging = staging_dir(out_dir)
    model.save_pretrained(staging)
    processor.save_pretrained(staging)
    (staging / "README.md").write_text(_model_card(config, model), encoding="utf-8")
    _publish(staging, out_dir)
    return out_dir


def ensure_tiny_backbone(preset: str) -> Path:
    """The cached directory of a tiny preset, built on first use (keyed by its configuration and its
    tokenizer's inputs)."""
    if preset not in TINY_PRESETS:
        raise ValueError(f"unknown tiny backbone preset {preset!r}; choose one of {sorted(TINY_PRESETS)}")
    config = TINY_PRESETS[preset]
    out_dir = cache_root() / "backbones" / f"{preset}-{config.key()}"
    if not (out_dir / "config.json").is_file():
        build_tiny_backbone(out_dir, config)
    return out_dir


def _publish(staging: Path, out_dir: Path) -> None:
    """Move a finished build into place; another process that finished first wins the race."""
    try:
        if out_dir.exists() and not (out_dir / "config.json").is_file():
            shutil.rmtree(out_dir)
        os.rename(staging, out_dir)
    except OSError:
        if not (out_dir / "config.json").is_file():
            raise
        shutil.rmtree(staging, ignore_errors=True)


def _model_card(config: TinyBackboneConfig, model: torch.nn.Module) -> str:
    n_params = sum(p.numel() for p in model.parameters())
    return (
        "# Tiny Qwen2-Audio stand-in (random weights)\n\n"
        "Built by `slu_lightning.model.tiny.build_tiny_backbone` for running slu-lightning on a CPU.\n"
        "Same architecture and processor as Qwen2-Audio-7B-Instruct; weights are random (seeded),\n"
        "so it has no speech or language prior until it is pretrained.\n\n"
        f"- parameters: {n_params:,}\n"
        f"- config: `{json.dumps(asdict(config), sort_keys=True)}`\n"
        "- tokenizer: byte-level BPE trained on CLDR (Babel) names and num2words numbers, not on SLU data\n"
        f"- tokenizer inputs: `{json.dumps(tokenizer_inputs(), sort_keys=True)}`\n"
    )
