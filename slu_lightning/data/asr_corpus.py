"""Build the speech-recognition pretraining corpus of the tiny stand-in model.

``make_asr_corpus`` speaks lexically varied general text (never SLU phrasing) with the ``pretrain``
eSpeak voices of ``partition`` and writes a folder in the manifest format::

    out_dir/
        train.jsonl  heldout.jsonl              # one SLUExample per line (readers/manifest.py)
        audio/<split>/<id>.flac                 # 16 kHz mono, 16 bit
        corpus.json                             # config, counts, hours, config key, content hash,
                                                # audio_versions (demo_corpus.audio_versions)

``train`` clips use the ``pretrain`` voices and rate/pitch ranges; ``heldout`` clips use the
``heldout`` voices (the ones of SLU dev/test), so that WER can be measured on unseen speakers.
Rows carry the sentence as ``text``, the placeholder intent ``asr``/``transcribe``, no entities,
``source="asr-pretrain"`` and ``meta = {voice, rate, pitch, kind}``.

Sentences, per locale (lower case, no digits, 3-14 words), in the mix that a CPU probe found to
teach words rather than templates (shared/NOTES.md):

- ``words`` (~40 %): random word strings from a general vocabulary: Faker's word list where the
  locale has its own, CLDR names (countries, languages, currencies, months, days) from Babel,
  num2words numbers and ordinals, Faker names and cities, the demo lexicon's slot values.
- ``chunks`` (~30 %): salads of 2-5 phrases: spelled-out numbers, dates, names, places, CLDR names,
  slot values and short word runs.
- ``template`` (~30 %): a few generic statements per locale ("{name} lives in {city}"), none of
  them an SLU request.

``everyday_words=N`` draws half of the random words from the N most frequent words of the
language (wordfreq's general lists: subtitles, web, news), the frequent ones more often. Without
them about a quarter of the SLU set's word tokens never occur in the training text
(``slu-lightning coverage``); with them the common words of requests ("lights", "lista", "tenho")
are said, though never in an SLU phrasing. The option is part of the config key and of the folder
name, so the corpora made without it are unchanged.

``extra_voices=N`` lets N more eSpeak variants per locale speak the ``train`` clips besides the four
``pretrain`` voices (``extra_pretrain_voices``: variants no SLU split uses), for a recogniser that
hears new speakers as well as the ones it trained on. Keyed and named like ``everyday_words``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache, partial
from importlib.metadata import version
from itertools import accumulate
from pathlib import Path
from string import Formatter

from slu_lightning.data import demo_lexicon
from slu_lightning.data.corpus_cache import build_cached
from slu_lightning.data.demo_corpus import Clip, Size, checked_locales, default_demo_dir, write_clips
from slu_lightning.data.demo_lexicon import (  # _SPOKEN_NAME is private there, reused on purpose
    ENTITY_TYPES,
    STYLES,
    TEMPLATES,
    SlotSampler,
    listed_cities,
    unmark,
)
from slu_lightning.data.partition import VOICE_ALIASES, Share, Use, extra_pretrain_voices, partition
from slu_lightning.data.records import SLUExample

SPLITS = ("train", "heldout")
SPLIT_USE: dict[str, Use] = {"train": "pretrain", "heldout": "heldout"}
SIZES: dict[str, dict[str, int]] = {
    # clips per locale and split
    "tiny": {"train": 20, "heldout": 6},  # tests
    "small": {"train": 1500, "heldout": 100},  # 9.6k clips, ~9 h of audio (~3.5 s a clip), minutes to build
    "large": {"train": 6000, "heldout": 300},  # 38k clips (the second CPU probe used 34k), ~37 h, ~3 GB
}
KINDS = ("words", "chunks", "template")
KIND_SHARES = {"chunks": 0.3, "template": 0.3}  # "words" gets the rest (~40 %)
MIN_WORDS, MAX_WORDS = 3, 14
SCENARIO, ACTION, SOURCE = "asr", "transcribe", "asr-pretrain"
CORPUS_FORMAT = 1
"""Bump when the corpus layout or the generation procedure changes, to invalidate caches."""

GENERIC_TEMPLATES: dict[str, tuple[str, ...]] = {
    # Statements about people, places and numbers: nothing a user asks an assistant to do.
    "en-US": (
        "{name} lives in {city}",
        "{name} was born on the {date}",
        "there are {number} people in {city}",
        "{name} speaks {language}",
        "the price is {number} {currency}",
        "the next word is {word}",
        "{name} and {name2} met in {city}",
    ),
    "fr-FR": (
        "{name} habite à {city}",
        "{name} est né le {date}",
        "à {city} vivent {number} personnes",
        "{name} parle {language}",
        "le prix est de {number} {currency}",
        "le mot suivant est {word}",
        "{name} et {name2} se sont rencontrés à {city}",
    ),
    "de-DE": (
        "{name} wohnt in {city}",
        "{name} wurde am {date} geboren",
        "in {city} leben {number} menschen",
        "{name} spricht {language}",
        "der preis beträgt {number} {currency}",
        "das nächste wort ist {word}",
        "{name} und {name2} trafen sich in {city}",
    ),
    "it-IT": (
        "{name} abita a {city}",
        "{name} è nato il {date}",
        "a {city} vivono {number} persone",
        "{name} parla {language}",
        "il prezzo è di {number} {currency}",
        "la parola successiva è {word}",
        "{name} e {name2} si sono incontrati a {city}",
    ),
    "es-ES": (
        "{name} vive en {city}",
        "{name} nació el {date}",
        "en {city} viven {number} personas",
        "{name} habla {language}",
        "el precio es de {number} {currency}",
        "la siguiente palabra es {word}",
        "{name} y {name2} se conocieron en {city}",
    ),
    "pt-PT": (
        "{name} mora em {city}",
        "{name} nasceu a {date}",
        "em {city} vivem {number} pessoas",
        "{name} fala {language}",
        "o preço é de {number} {currency}",
        "a palavra seguinte é {word}",
        "{name} e {name2} conheceram-se em {city}",
    ),
}
DATE_FORMATS = {
    # day and month without a leading article (the templates bring it); {year} is optional
    "en-US": ("{day} of {month}", " {year}"),
    "fr-FR": ("{day} {month}", " {year}"),
    "de-DE": ("{day} {month}", " {year}"),
    "it-IT": ("{day} {month}", " {year}"),
    "es-ES": ("{day} de {month}", " de {year}"),
    "pt-PT": ("{day} de {month}", " de {year}"),
}

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
"""One spoken word of the generated text: letters, possibly joined by apostrophes or hyphens."""
EVERYDAY_SHARE = 0.5
"""Share of random words drawn from the everyday words (weights rank^-0.5: Zipf, flattened)."""
_VOWELS = frozenset("aeiouyàáâèéêìíòóôùú")
"""One-letter words worth saying ("a", "à", "e", "é", "y"); consonants alone are clitics."""


def default_asr_dir(
    size: Size = "small", seed: int = 0, everyday_words: int = 0, extra_voices: int = 0
) -> Path:
    """``$SLU_LIGHTNING_CACHE/asr-<size>-seed<seed>[-everyday<N>][-voices<M>]``, next to the demo corpus."""
    everyday = f"-everyday{everyday_words}" if everyday_words else ""
    voices = f"-voices{extra_voices}" if extra_voices else ""
    return default_demo_dir(size, seed).parent / f"asr-{size}-seed{seed}{everyday}{voices}"


def make_asr_corpus(
    out_dir: str | Path,
    *,
    size: Size = "small",
    seed: int = 0,
    locales: Sequence[str] | None = None,
    workers: int | None = None,
    everyday_words: int = 0,
    extra_voices: int = 0,
) -> Path:
    """Build the ASR pretraining corpus in ``out_dir``, or return at once if it is already there.

    Args:
        out_dir: Folder to create. An existing corpus with another config is replaced; any other
            non-empty folder is left alone and raises ``FileExistsError``.
        size: ``tiny`` (tests), ``small`` or ``large``; see ``SIZES``.
        seed: Decides the voice partition, the sentences and the voice of each clip.
        locales: Subset of ``LOCALES`` (default: all six). A locale's data does not depend on
            which other locales are built.
        workers: Synthesis processes, as in ``make_demo_corpus``; the files do not depend on it.
        everyday_words: Add this many of the language's most frequent words to the vocabulary
            of random word strings (0: none, the corpus of the bundled stand-in).
        extra_voices: Let this many more eSpeak variants per locale speak the train clips
            (0: the four pretrain voices only).

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir).resolve()
    locales = checked_locales(locales, size, SIZES)
    config = {
        "format": CORPUS_FORMAT,
        "kind": "asr-pretrain",
        "size": size,
        "sizes": SIZES[size],
        "seed": seed,
        "locales": locales,
        "lexicon": demo_lexicon.lexicon_fingerprint(),
        "templates": hashlib.sha256(json.dumps(GENERIC_TEMPLATES, sort_keys=True).encode()).hexdigest()[:16],
        "versions": {name: version(name) for name in ("espeakng-loader", "faker", "babel", "num2words")},
    }
    if everyday_words:  # absent when 0: the keys of corpora made before the option stay valid
        config["everyday_words"] = everyday_words
        config["versions"]["wordfreq"] = version("wordfreq")
    if extra_voices:
        config["extra_voices"] = extra_voices
        # drawn with eSpeak's aliases of the default voice passed over: de-DE's twelfth voice changed
        config["voice_aliases_passed_over"] = sorted(VOICE_ALIASES)
    build = partial(_build, config=config, seed=seed, locales=locales, workers=workers)
    return build_cached(out_dir, config, "an ASR corpus", build)


def plan_asr_corpus(
    root: str | Path,
    *,
    size: Size = "small",
    seed: int = 0,
    locales: Sequence[str] | None = None,
    everyday_words: int = 0,
    extra_voices: int = 0,
) -> dict[str, list[SLUExample]]:
    """The examples that ``make_asr_corpus`` would write under ``root``, without any audio; the
    same arguments are refused as there."""
    root, locales = Path(root).resolve(), checked_locales(locales, size, SIZES)
    plan = _plan_all(root, SIZES[size], seed, locales, everyday_words, extra_voices)
    return {split: [clip.example for clip in clips] for split, clips in plan.items()}


def _plan_all(
    root: Path,
    sizes: dict[str, int],
    seed: int,
    locales: list[str],
    everyday_words: int,
    extra_voices: int = 0,
) -> dict[str, list[Clip]]:
    shares = partition(seed, locales)
    clips: dict[str, list[Clip]] = {split: [] for split in SPLITS}
    for locale in locales:
        generator = SentenceGenerator(locale, seed, everyday_words)
        extra = extra_pretrain_voices(locale, extra_voices, seed)
        for split in SPLITS:  # train first: heldout sentences are drawn to differ from train's
            share = shares[locale][SPLIT_USE[split]]
            if split == "train":
                share = replace(share, voices=share.voices + extra)
            clips[split] += _plan(root, split, locale, share, sizes[split], seed, generator)
    return clips


def _build(root: Path, config: dict, seed: int, locales: list[str], workers: int | None) -> dict:
    """Write manifests and audio under ``root``; returns the summary for ``corpus.json``."""
    clips = _plan_all(
        root, config["sizes"], seed, locales, config.get("everyday_words", 0), config.get("extra_voices", 0)
    )
    return {
        "config": config,
        **write_clips(root, clips, locales, workers, "ASR corpus"),
        "kinds": {
            split: dict(sorted(Counter(c.example.meta["kind"] for c in clips[split]).items()))
            for split in SPLITS
        },
        "words": {split: sum(len(c.example.text.split()) for c in clips[split]) for split in SPLITS},
    }


def _plan(
    root: Path, split: str, locale: str, share: Share, count: int, seed: int, generator: SentenceGenerator
) -> list[Clip]:
    """The clips of one split and locale: kinds in fixed shares, in shuffled order."""
    rng = random.Random(f"asr-corpus:{seed}:{split}:{locale}")
    n_chunks = round(count * KIND_SHARES["chunks"])
    n_template = round(count * KIND_SHARES["template"])
    kinds = ["chunks"] * n_chunks + ["template"] * n_template + ["words"] * (count - n_chunks - n_template)
    rng.shuffle(kinds)
    clips = []
    for index, kind in enumerate(kinds):
        text = generator.sentence(kind)
        voice = rng.choice(share.voices)
        rate, pitch = rng.randint(*share.rate), rng.randint(*share.pitch)
        utterance_id = f"asr-{locale.lower()}-{split}-{index:05d}"
        path = root / "audio" / split / f"{utterance_id}.flac"
        meta = {"voice": voice, "rate": str(rate), "pitch": str(pitch), "kind": kind}
        example = SLUExample(
            id=utterance_id,
            locale=locale,
            text=text,
            scenario=SCENARIO,
            action=ACTION,
            audio=str(path),
            source=SOURCE,
            meta=meta,
        )
        clips.append(Clip(split, example, voice, rate, pitch, path))
    return clips


def normalise(text: str) -> str:
    """The words that WER and CER compare: NFC, lower case, single spaces, and words only (letters and
    digits with their combining marks, inner apostrophes and hyphens), so that "5" vs "9" is an
    error, Hindi vowel signs and Arabic harakat stay in their word, and an NFD copy equals its NFC
    original. The Turkish dotted capital becomes "i" (``str.lower`` leaves "i" + U+0307 after it)."""
    text = unicodedata.normalize("NFC", text).replace("İ", "i").lower().replace("’", "'")
    return " ".join(_written_word().findall(text))


@cache
def _written_word() -> re.Pattern[str]:
    """One written word: letters or digits, each followed by its combining marks (Unicode category
    M, which ``re`` has no class for), possibly joined by apostrophes or hyphens."""
    marks = "".join(chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c))[0] == "M")
    unit = rf"(?:[^\W_][{marks}]*)+"
    return re.compile(rf"{unit}(?:['-]{unit})*")


def _spoken_words(text: str) -> str:
    """``text`` lower case, its letter words only: what the generator says (no digits, which eSpeak
    would read out in words other than the text's)."""
    return " ".join(_WORD.findall(text.lower().replace("’", "'")))


@cache
def slu_pattern(locale: str) -> re.Pattern[str]:
    """Matches any text that contains an SLU template of ``locale``, whatever fills its slots."""
    alternatives = []
    for templates in TEMPLATES[locale].values():
        for template in templates:
            parts = []
            for literal, slot, _, _ in Formatter().parse(template):
                words = literal.split()
                if words:
                    parts.append(r"\s+".join(map(re.escape, words)))
                if slot is not None:
                    parts.append(r"\S.*?")
            alternatives.append(r"\s+".join(parts))
    return re.compile(r"(?<!\S)(?:" + "|".join(alternatives) + r")(?!\S)")


def everyday_vocabulary(locale: str, count: int) -> list[str]:
    """The ``count`` most frequent words of ``locale``'s language, most frequent first, that are
    spoken words: no digits or symbols, and no one-consonant clitics ("l", "d") that wordfreq splits
    off "l'homme"."""
    from wordfreq import top_n_list

    words = dict.fromkeys(_spoken_words(word) for word in top_n_list(locale.split("-")[0], count))
    return [word for word in words if _WORD.fullmatch(word) and (len(word) > 1 or word in _VOWELS)]


def _vocabulary(locale: str) -> tuple[list[str], list[str], list[str]]:
    """General text of ``locale``, sorted and normalised: common words, words of CLDR names (many
    of them rare: languages, currencies), and multi-word phrases from both. Nothing from templates."""
    from babel import Locale
    from babel.units import get_unit_name
    from num2words import num2words

    style = STYLES[locale]
    babel = Locale.parse(style.babel)
    common: set[str] = set()
    for context in ("format", "stand-alone"):
        common.update(str(v) for v in babel.months[context]["wide"].values())
        common.update(str(v) for v in babel.days[context]["wide"].values())
    for table in demo_lexicon.VALUES[locale].values():
        common.update(unmark(value)[0] for value in table)
    common.update(num2words(n, lang=style.number_lang) for n in range(101))
    common.update(num2words(n, lang=style.number_lang, to="ordinal") for n in range(1, 32))
    common.update(
        filter(
            None,
            (get_unit_name(unit, length="long", locale=babel) for unit in babel._data["unit_display_names"]),
        )
    )
    for provider in ("lorem", "job"):  # only locales with their own list: pt_PT's lorem would be Latin
        if importlib.util.find_spec(f"faker.providers.{provider}.{style.faker}") is not None:
            module = importlib.import_module(f"faker.providers.{provider}.{style.faker}")
            common.update(module.Provider.word_list if provider == "lorem" else module.Provider.jobs)
    cldr: set[str] = set()
    for table in (babel.territories, babel.languages, babel.currencies):
        cldr.update(str(value) for value in table.values())

    def clean(names: set[str]) -> set[str]:
        return {_spoken_words(name) for name in names if not re.search(r"\d", name)} - {""}

    common, cldr = clean(common), clean(cldr)
    common_words = sorted({word for name in common for word in name.split()})
    cldr_words = sorted({word for name in cldr for word in name.split()} - set(common_words))
    phrases = sorted(name for name in common | cldr if 2 <= len(name.split()) <= 5)
    return common_words, cldr_words, phrases


class SentenceGenerator:
    """Draws the sentences of one locale; the same locale and seed give the same sequence.

    Every sentence is new within the generator, has 3-14 words and contains no SLU template.
    """

    def __init__(self, locale: str, seed: int, everyday_words: int = 0) -> None:
        self.locale = locale
        self.style = STYLES[locale]
        self._rng = random.Random(f"asr-text:{seed}:{locale}")
        self._slots = SlotSampler(locale, f"asr-slots:{seed}:{locale}")
        self._words, self._cldr_words, self._phrases = _vocabulary(locale)
        self._everyday = everyday_vocabulary(locale, everyday_words) if everyday_words else []
        self._everyday_weights = list(accumulate(rank**-0.5 for rank in range(1, len(self._everyday) + 1)))
        self._seen: set[str] = set()
        self._slu = slu_pattern(locale)
        self._templates = GENERIC_TEMPLATES[locale]
        from babel import Locale

        babel = Locale.parse(self.style.babel)
        self._months = sorted({_spoken_words(str(m)) for m in babel.months["format"]["wide"].values()})
        self._languages = sorted({_spoken_words(str(v)) for v in babel.languages.values()} - {""})
        countries = {_spoken_words(str(v)) for k, v in babel.territories.items() if k.isalpha()}  # not "001"
        self._countries = sorted(countries - {""})
        self._currencies = sorted({_spoken_words(str(v)) for v in babel.currencies.values()} - {""})
        self._chunk_makers: tuple[Callable[[], str], ...] = (
            self._number,
            self._number,
            self._ordinal,
            self._date,
            self._person,
            self._person,
            self._city,
            self._city,
            self._name_phrase,
            self._name_phrase,
            self._slot_value,
            self._word_run,
            self._word_run,
        )

    def sentence(self, kind: str) -> str:
        make = {"words": self._random_words, "chunks": self._chunk_salad, "template": self._template}[kind]
        for _ in range(1000):
            text = _spoken_words(make())
            if (
                MIN_WORDS <= len(text.split()) <= MAX_WORDS
                and text not in self._seen
                and self._slu.search(text) is None
            ):
                self._seen.add(text)
                return text
        raise RuntimeError(f"no new {kind} sentence for {self.locale} in 1000 draws")

    # -- the three kinds
    def _random_words(self) -> str:
        return " ".join(self._random_word() for _ in range(self._rng.randint(MIN_WORDS, MAX_WORDS)))

    def _random_word(self) -> str:
        if self._everyday and self._rng.random() < EVERYDAY_SHARE:  # frequent words more often
            return self._rng.choices(self._everyday, cum_weights=self._everyday_weights)[0]
        draw = self._rng.random()
        if draw < 0.7:
            return self._rng.choice(self._words)
        if draw < 0.85:
            return self._rng.choice(self._cldr_words)
        return self._rng.choice((self._person() if draw < 0.93 else self._city()).split())

    def _chunk_salad(self) -> str:
        chunks = [self._rng.choice(self._chunk_makers)() for _ in range(self._rng.randint(2, 5))]
        while len(" ".join(chunks).split()) > MAX_WORDS and len(chunks) > 1:
            chunks.pop()
        return " ".join(chunks)

    def _template(self) -> str:
        template = self._rng.choice(self._templates)
        fillers = {
            "name": self._person,
            "name2": self._person,
            "city": self._city,
            "date": self._date_no_article,
            "number": self._number,
            "language": lambda: self._rng.choice(self._languages),
            "currency": lambda: self._rng.choice(self._currencies),
            "word": lambda: self._rng.choice(self._words),
        }
        slots = [slot for _, slot, _, _ in Formatter().parse(template) if slot]
        return template.format(**{slot: fillers[slot]() for slot in slots})

    # -- chunks
    def _number(self) -> str:
        from num2words import num2words

        magnitude = self._rng.choice((20, 100, 1000, 10_000, 1_000_000))
        return num2words(self._rng.randrange(magnitude), lang=self.style.number_lang)

    def _ordinal(self) -> str:
        from num2words import num2words

        return num2words(self._rng.randint(1, 100), lang=self.style.number_lang, to="ordinal")

    def _year(self) -> str:
        from num2words import num2words

        year = self._rng.randint(1900, 2099)
        to = "year" if self.locale == "en-US" else "cardinal"  # "nineteen eighty-four"
        return num2words(year, lang=self.style.number_lang, to=to)

    def _date_no_article(self) -> str:
        from num2words import num2words

        style = self.style
        day = self._rng.choice([d for d in range(1, 32) if d not in style.skip_days])
        if day == 1 and style.first_day:
            day_words = style.first_day
        elif style.ordinal_days:
            day_words = num2words(day, lang=style.number_lang, to="ordinal") + style.ordinal_suffix
        else:
            day_words = num2words(day, lang=style.number_lang)
        date_format, year_format = DATE_FORMATS[self.locale]
        text = date_format.format(day=day_words, month=self._rng.choice(self._months))
        if self._rng.random() < 0.4:
            text += year_format.format(year=self._year())
        return text

    def _date(self) -> str:
        return self._date_no_article() if self._rng.random() < 0.5 else unmark(self._slots.sample("date"))[0]

    def _person(self) -> str:
        return unmark(self._slots.sample(self._rng.choice(("person", "artist_name"))))[0]

    def _city(self) -> str:
        return self._place() if self._rng.random() < 0.8 else self._rng.choice(self._countries)

    def _place(self) -> str:
        cities = listed_cities(self.style.faker)
        return self._rng.choice(cities) if cities else unmark(self._slots.sample("place_name"))[0]

    def _name_phrase(self) -> str:
        return self._rng.choice(self._phrases)

    def _slot_value(self) -> str:
        entity_type = self._rng.choice(ENTITY_TYPES)
        return self._place() if entity_type == "place_name" else unmark(self._slots.sample(entity_type))[0]

    def _word_run(self) -> str:
        return " ".join(self._random_word() for _ in range(self._rng.randint(1, 3)))
