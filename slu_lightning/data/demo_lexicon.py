"""What the synthetic demo corpus says: intents, paraphrase templates and slot values, six locales.

The labels follow MASSIVE: one English inventory of scenarios, actions and entity types shared by
every locale; the words are in the utterance's language. Transcripts are what eSpeak reads aloud:
lower case, numbers, times and dates written out as words, no digits and no punctuation other
than apostrophes and hyphens inside words.

Templates hold ``{entity_type}`` slots. A slot value may mark its entity part with brackets and
carry words around it that belong to the sentence, not to the entity: ``"in der [küche]"`` reads
"in der küche" and labels ``house_place: küche``. This keeps gender, articles and prepositions
right without a template per gender.

Names, artists and cities come from Faker, weekday and month names from Babel, numbers from
num2words; everything else is in the tables below.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from string import Formatter

from babel.dates import get_day_names, get_month_names
from faker import Faker
from num2words import num2words

from slu_lightning.data.records import Entity

LOCALES = ("en-US", "fr-FR", "de-DE", "it-IT", "es-ES", "pt-PT")

INTENTS = (
    "alarm_set",
    "alarm_query",
    "alarm_remove",
    "weather_query",
    "play_music",
    "play_radio",
    "calendar_set",
    "calendar_query",
    "calendar_remove",
    "iot_hue_lightoff",
    "iot_hue_lighton",
    "iot_hue_lightchange",
    "transport_ticket",
    "transport_query",
    "email_sendemail",
    "email_query",
    "takeaway_order",
    "takeaway_query",
    "news_query",
    "lists_createoradd",
    "lists_query",
    "lists_remove",
    "qa_factoid",
    "datetime_query",
    "audio_volume_up",
    "audio_volume_mute",
)
"""Intent labels, ``scenario_action`` as in SLURP; the scenario is the part before the first ``_``."""

ENTITY_TYPES = (
    "time",
    "date",
    "place_name",
    "person",
    "artist_name",
    "music_genre",
    "radio_name",
    "event_name",
    "house_place",
    "color_type",
    "transport_type",
    "food_type",
    "list_name",
    "weather_descriptor",
    "news_topic",
)


def split_intent(intent: str) -> tuple[str, str]:
    """``iot_hue_lightoff`` -> (``iot``, ``hue_lightoff``)."""
    scenario, _, action = intent.partition("_")
    return scenario, action


@dataclass(frozen=True)
class LocaleStyle:
    """How one locale says times, dates and radio stations, and where its other values come from."""

    espeak: str
    """eSpeak NG language of the locale's voices."""
    number_lang: str
    """num2words language code."""
    faker: str
    babel: str
    hours: tuple[int, ...]
    """Hours that fit every time pattern (no gender or elision trouble: no "une heure", "all'una")."""
    times: tuple[str, ...]
    """Time phrases with ``{h}``, ``{next_h}`` and ``{m}`` for hour, hour + 1 and minutes."""
    relative_days: tuple[str, ...]
    weekdays: tuple[str, ...]
    """Date phrases around a weekday name ``{day}``."""
    day_month: str
    """Date phrase with ``{day}`` (number words) and ``{month}``."""
    ordinal_days: bool = False
    ordinal_suffix: str = ""
    first_day: str | None = None
    """Word for the 1st of a month where it is not the plain number (``premier``, ``primo``)."""
    skip_days: tuple[int, ...] = ()
    radio: tuple[str, ...] = ("radio {n}", "{n} f m")


MINUTES = (10, 20, 25, 35, 40, 50)

STYLES: dict[str, LocaleStyle] = {
    "en-US": LocaleStyle(
        "en-us",
        "en",
        "en_US",
        "en_US",
        hours=tuple(range(1, 12)),
        times=("{h}", "{h} {m}", "half past {h}", "quarter to {next_h}", "{h} a m", "{h} p m", "{h} o'clock"),
        relative_days=("[tomorrow]", "[today]", "[the day after tomorrow]", "[this weekend]"),
        weekdays=("on [{day}]", "[next {day}]", "[this {day}]"),
        day_month="on [the {day} of {month}]",
        ordinal_days=True,
        radio=("radio {n}", "{n} f m", "k {n}"),
    ),
    "fr-FR": LocaleStyle(
        "fr",
        "fr",
        "fr_FR",
        "fr_FR",
        hours=tuple(range(2, 20)),
        times=(
            "{h} heures",
            "{h} heures {m}",
            "{h} heures et quart",
            "{h} heures et demie",
            "{next_h} heures moins le quart",
            "midi",
            "minuit",
        ),
        relative_days=("[demain]", "[aujourd'hui]", "[après-demain]", "[ce week-end]"),
        weekdays=("[{day}]", "[{day} prochain]"),
        day_month="le [{day} {month}]",
        first_day="premier",
    ),
    "de-DE": LocaleStyle(
        "de",
        "de",
        "de_DE",
        "de_DE",
        hours=tuple(range(2, 12)),
        times=("{h} uhr", "{h} uhr {m}", "halb {next_h}", "viertel nach {h}", "viertel vor {next_h}"),
        relative_days=("[morgen]", "[heute]", "[übermorgen]", "am [wochenende]"),
        weekdays=("am [{day}]", "[nächsten {day}]"),
        day_month="am [{day} {month}]",
        ordinal_days=True,
        ordinal_suffix="n",
    ),
    "it-IT": LocaleStyle(
        "it",
        "it",
        "it_IT",
        "it_IT",
        hours=tuple(range(2, 12)),
        times=("{h}", "{h} e {m}", "{h} e mezza", "{h} e un quarto", "{next_h} meno un quarto"),
        relative_days=("[domani]", "[oggi]", "[dopodomani]", "nel [fine settimana]"),
        weekdays=("[{day}]", "[{day} prossimo]"),
        day_month="il [{day} {month}]",
        first_day="primo",
        skip_days=(8, 11),  # "l'otto", "l'undici"
    ),
    "es-ES": LocaleStyle(
        "es",
        "es",
        "es_ES",
        "es_ES",
        hours=tuple(range(2, 12)),
        times=("{h}", "{h} y {m}", "{h} y media", "{h} y cuarto", "{next_h} menos cuarto", "{h} en punto"),
        relative_days=("[mañana]", "[hoy]", "[pasado mañana]", "este [fin de semana]"),
        weekdays=("el [{day}]", "el [próximo {day}]"),
        day_month="el [{day} de {month}]",
    ),
    "pt-PT": LocaleStyle(
        "pt",
        "pt",
        "pt_PT",
        "pt_PT",
        hours=tuple(range(3, 12)),
        times=("{h}", "{h} e {m}", "{h} e meia", "{h} e um quarto", "{h} horas"),
        relative_days=("[amanhã]", "[hoje]", "[depois de amanhã]", "no [fim de semana]"),
        weekdays=("[{day}]", "[{day} que vem]"),
        day_month="a [{day} de {month}]",
        first_day="primeiro",
        radio=("rádio {n}", "{n} f m"),
    ),
}

VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    "en-US": {
        "music_genre": ("jazz", "rock", "classical", "hip hop", "reggae", "country", "blues", "pop"),
        "color_type": ("red", "blue", "green", "yellow", "purple", "orange", "pink", "warm white"),
        "house_place": ("kitchen", "living room", "bedroom", "bathroom", "hallway", "office", "garage"),
        "transport_type": ("train", "bus", "plane", "ferry", "coach", "tram"),
        "list_name": ("shopping", "grocery", "to do", "packing", "birthday", "reading"),
        "food_type": ("pizza", "sushi", "pasta", "bread", "coffee", "ice cream", "chicken curry", "salad"),
        "weather_descriptor": (
            "[rain]",
            "[snow]",
            "be [sunny]",
            "be [windy]",
            "be [cold]",
            "be [hot]",
            "be [cloudy]",
        ),
        "news_topic": ("sports", "politics", "technology", "business", "science", "health"),
        "event_name": ("meeting", "dentist appointment", "team lunch", "yoga class", "phone call", "dinner"),
    },
    "fr-FR": {
        "music_genre": ("jazz", "rock", "classique", "reggae", "rap", "pop", "disco"),
        "color_type": ("rouge", "bleu", "vert", "jaune", "violet", "orange", "rose"),
        "house_place": (
            "la [cuisine]",
            "le [salon]",
            "la [chambre]",
            "la [salle de bain]",
            "le [couloir]",
            "le [bureau]",
            "le [garage]",
        ),
        "transport_type": ("train", "bus", "tram", "métro", "car", "ferry"),
        "list_name": ("courses", "tâches", "cadeaux", "vacances", "travail", "lecture"),
        "food_type": (
            "de la [pizza]",
            "des [sushis]",
            "des [pâtes]",
            "du [pain]",
            "du [café]",
            "de la [glace]",
            "du [poulet au curry]",
            "de la [salade]",
        ),
        "weather_descriptor": (
            "[pleuvoir]",
            "[neiger]",
            "faire [froid]",
            "faire [chaud]",
            "faire [beau]",
            "y avoir du [vent]",
        ),
        "news_topic": (
            "du [sport]",
            "de la [politique]",
            "de la [technologie]",
            "de l'[économie]",
            "de la [science]",
            "de la [santé]",
        ),
        "event_name": (
            "une [réunion]",
            "un [rendez-vous chez le dentiste]",
            "un [déjeuner d'équipe]",
            "un [cours de yoga]",
            "un [appel]",
            "un [dîner]",
        ),
    },
    "de-DE": {
        "music_genre": ("jazz", "rock", "klassik", "reggae", "hip hop", "pop", "schlager"),
        "color_type": ("rot", "blau", "grün", "gelb", "lila", "orange", "rosa"),
        "house_place": (
            "in der [küche]",
            "im [wohnzimmer]",
            "im [schlafzimmer]",
            "im [bad]",
            "im [flur]",
            "im [büro]",
            "in der [garage]",
        ),
        "transport_type": ("zug", "bus", "flug", "fernbus", "nachtzug", "regionalzug"),
        "list_name": (
            "einkaufsliste",
            "aufgabenliste",
            "geschenkeliste",
            "packliste",
            "wunschliste",
            "leseliste",
        ),
        "food_type": ("pizza", "sushi", "nudeln", "brot", "kaffee", "eis", "hähnchencurry", "salat"),
        "weather_descriptor": (
            "[regnen]",
            "[schneien]",
            "[kalt] sein",
            "[warm] sein",
            "[sonnig] sein",
            "[windig] sein",
            "[bewölkt] sein",
        ),
        "news_topic": ("sport", "politik", "technik", "wirtschaft", "wissenschaft", "gesundheit"),
        "event_name": (
            "ein [meeting]",
            "einen [zahnarzttermin]",
            "ein [teamessen]",
            "einen [yogakurs]",
            "einen [anruf]",
            "ein [abendessen]",
        ),
    },
    "it-IT": {
        "music_genre": ("jazz", "rock", "classica", "reggae", "pop", "lirica", "rap"),
        "color_type": ("rosso", "blu", "verde", "giallo", "viola", "arancione", "rosa"),
        "house_place": (
            "in [cucina]",
            "in [salotto]",
            "in [camera da letto]",
            "in [bagno]",
            "nel [corridoio]",
            "in [ufficio]",
            "in [garage]",
        ),
        "transport_type": ("treno", "pullman", "traghetto", "tram", "bus", "regionale"),
        "list_name": (
            "della [spesa]",
            "dei [regali]",
            "delle [cose da fare]",
            "delle [vacanze]",
            "del [lavoro]",
            "dei [libri]",
        ),
        "food_type": ("pizza", "sushi", "pasta", "pane", "caffè", "gelato", "pollo al curry", "insalata"),
        "weather_descriptor": (
            "[pioverà]",
            "[nevicherà]",
            "farà [freddo]",
            "farà [caldo]",
            "ci sarà il [sole]",
            "ci sarà [vento]",
            "sarà [nuvoloso]",
        ),
        "news_topic": ("sport", "politica", "tecnologia", "economia", "scienza", "salute"),
        "event_name": (
            "una [riunione]",
            "un [appuntamento dal dentista]",
            "un [pranzo di lavoro]",
            "una [lezione di yoga]",
            "una [telefonata]",
            "una [cena]",
        ),
    },
    "es-ES": {
        "music_genre": ("jazz", "rock", "clásica", "reggae", "pop", "flamenco", "salsa"),
        "color_type": ("rojo", "azul", "verde", "amarillo", "morado", "naranja", "rosa"),
        "house_place": (
            "la [cocina]",
            "el [salón]",
            "el [dormitorio]",
            "el [baño]",
            "el [pasillo]",
            "la [oficina]",
            "el [garaje]",
        ),
        "transport_type": ("tren", "autobús", "avión", "ferry", "metro", "tranvía"),
        "list_name": (
            "de la [compra]",
            "de [tareas]",
            "de [regalos]",
            "de [vacaciones]",
            "del [trabajo]",
            "de [libros]",
        ),
        "food_type": ("pizza", "sushi", "pasta", "pan", "café", "helado", "pollo al curry", "ensalada"),
        "weather_descriptor": (
            "va a [llover]",
            "va a [nevar]",
            "va a hacer [frío]",
            "va a hacer [calor]",
            "va a hacer [sol]",
            "va a hacer [viento]",
            "va a estar [nublado]",
        ),
        "news_topic": ("deportes", "política", "tecnología", "economía", "ciencia", "salud"),
        "event_name": (
            "una [reunión]",
            "una [cita con el dentista]",
            "una [comida de equipo]",
            "una [clase de yoga]",
            "una [llamada]",
            "una [cena]",
        ),
    },
    "pt-PT": {
        "music_genre": ("jazz", "rock", "clássica", "fado", "pop", "reggae", "kizomba"),
        "color_type": ("vermelho", "azul", "verde", "amarelo", "roxo", "laranja", "cor-de-rosa"),
        "house_place": (
            "na [cozinha]",
            "na [sala]",
            "no [quarto]",
            "na [casa de banho]",
            "no [corredor]",
            "no [escritório]",
            "na [garagem]",
        ),
        "transport_type": ("comboio", "autocarro", "avião", "metro", "barco", "elétrico"),
        "list_name": (
            "de [compras]",
            "de [tarefas]",
            "de [presentes]",
            "de [férias]",
            "do [trabalho]",
            "de [livros]",
        ),
        "food_type": ("pizza", "sushi", "massa", "pão", "café", "gelado", "caril de frango", "salada"),
        "weather_descriptor": (
            "vai [chover]",
            "vai [nevar]",
            "vai estar [frio]",
            "vai estar [calor]",
            "vai estar [sol]",
            "vai estar [vento]",
            "vai estar [nublado]",
        ),
        "news_topic": ("desporto", "política", "tecnologia", "economia", "ciência", "saúde"),
        "event_name": (
            "uma [reunião]",
            "uma [consulta no dentista]",
            "um [almoço de equipa]",
            "uma [aula de ioga]",
            "uma [chamada]",
            "um [jantar]",
        ),
    },
}
"""Slot values read from tables; ``time``, ``date``, ``radio_name`` and the Faker types are made."""

TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "en-US": {
        "alarm_set": (
            "wake me up at {time} {date}",
            "set an alarm for {time}",
            "i need an alarm at {time} {date}",
            "please set my alarm to {time}",
            "can you wake me {date} at {time}",
            "alarm for {time} please",
            "make sure i'm up by {time} {date}",
            "create a new alarm at {time}",
        ),
        "alarm_query": (
            "what alarms do i have",
            "which alarms are set {date}",
            "do i have an alarm {date}",
            "show me my alarms",
            "list my alarms {date}",
            "what time is my alarm {date}",
            "have i set any alarms",
            "tell me about my alarms {date}",
        ),
        "alarm_remove": (
            "cancel my alarm for {time}",
            "delete the alarm at {time} {date}",
            "remove the {time} alarm",
            "turn off my alarm {date}",
            "i don't need the alarm at {time} anymore",
            "get rid of the alarm {date} at {time}",
            "clear my alarm for {time}",
            "stop the alarm set for {time} {date}",
        ),
        "weather_query": (
            "will it {weather_descriptor} {date} in {place_name}",
            "what's the weather like in {place_name} {date}",
            "is it going to {weather_descriptor} in {place_name}",
            "tell me the forecast for {place_name}",
            "do i need an umbrella {date}",
            "how's the weather {date} in {place_name}",
            "do you think it will {weather_descriptor} {date}",
            "give me the weather for {place_name} {date}",
        ),
        "play_music": (
            "play some {music_genre}",
            "put on {music_genre} music",
            "i want to listen to {artist_name}",
            "play something by {artist_name}",
            "play {music_genre} by {artist_name}",
            "can you play songs from {artist_name}",
            "start my {music_genre} playlist",
            "shuffle some {music_genre} for me",
        ),
        "play_radio": (
            "play {radio_name}",
            "tune in to {radio_name}",
            "turn on the radio",
            "switch to {radio_name}",
            "i want to listen to {radio_name}",
            "put the radio on {radio_name}",
            "start the radio station {radio_name}",
            "can you play {radio_name} please",
        ),
        "calendar_set": (
            "add a {event_name} with {person} {date} at {time}",
            "schedule a {event_name} {date}",
            "remind me about my {event_name} at {time}",
            "put a {event_name} with {person} in my calendar",
            "book a {event_name} {date} at {time}",
            "set up a {event_name} with {person} {date}",
            "create an event called {event_name} {date}",
            "i have a {event_name} {date} at {time} add it",
        ),
        "calendar_query": (
            "what's on my calendar {date}",
            "do i have anything {date}",
            "when am i meeting {person}",
            "what do i have {date}",
            "am i free {date} at {time}",
            "show me my schedule {date}",
            "is there anything with {person} {date}",
            "who am i seeing {date}",
        ),
        "calendar_remove": (
            "cancel my meeting with {person}",
            "delete the event {date} at {time}",
            "remove everything from my calendar {date}",
            "clear my schedule {date}",
            "cancel the appointment at {time} {date}",
            "i can't make the meeting with {person} {date} cancel it",
            "take the {time} meeting off my calendar",
            "drop my appointment with {person}",
        ),
        "iot_hue_lightoff": (
            "turn off the lights in the {house_place}",
            "switch off the {house_place} lights",
            "lights off in the {house_place}",
            "kill the lights in the {house_place}",
            "can you turn the {house_place} light off",
            "turn off the lights",
            "make it dark in the {house_place}",
            "shut off the lamp in the {house_place}",
        ),
        "iot_hue_lighton": (
            "turn on the lights in the {house_place}",
            "switch on the {house_place} light",
            "lights on in the {house_place}",
            "can you light up the {house_place}",
            "turn the lights on",
            "i need some light in the {house_place}",
            "put the {house_place} lights on",
            "turn on the lamp in the {house_place}",
        ),
        "iot_hue_lightchange": (
            "change the lights to {color_type}",
            "make the {house_place} lights {color_type}",
            "set the light in the {house_place} to {color_type}",
            "i want {color_type} light in the {house_place}",
            "turn the lamp {color_type}",
            "switch the {house_place} light to {color_type}",
            "can you make the lights {color_type}",
            "change the color in the {house_place} to {color_type}",
        ),
        "transport_ticket": (
            "book a {transport_type} ticket to {place_name} {date}",
            "i need a {transport_type} ticket to {place_name}",
            "buy me a ticket for the {transport_type} to {place_name}",
            "get me a {transport_type} ticket for {place_name} {date}",
            "reserve a seat on the {transport_type} to {place_name} {date}",
            "can you book me a {transport_type} to {place_name}",
            "i want to go to {place_name} by {transport_type} {date} book it",
            "purchase a {transport_type} ticket to {place_name}",
        ),
        "transport_query": (
            "when is the next {transport_type} to {place_name}",
            "what time does the {transport_type} to {place_name} leave",
            "is the {time} {transport_type} to {place_name} on time",
            "how long does the {transport_type} to {place_name} take",
            "are there any delays on the {transport_type} to {place_name}",
            "when does the {transport_type} leave for {place_name}",
            "what's the status of the {transport_type} at {time}",
            "is there a {transport_type} to {place_name} after {time}",
        ),
        "email_sendemail": (
            "send an email to {person}",
            "email {person} about the meeting {date}",
            "write an email to {person}",
            "compose a new email for {person}",
            "send {person} a message by email",
            "reply to the email from {person}",
            "draft an email to {person} saying i'll be late",
            "shoot {person} an email",
        ),
        "email_query": (
            "do i have any new emails",
            "check my email",
            "did {person} send me an email",
            "any emails from {person} {date}",
            "read my latest emails",
            "what emails did i get {date}",
            "show me emails from {person}",
            "is there anything new in my inbox",
        ),
        "takeaway_order": (
            "order some {food_type}",
            "i want to order {food_type} for delivery",
            "get me {food_type} from the place down the road",
            "can you order {food_type} for dinner",
            "place an order for {food_type}",
            "i'd like {food_type} delivered",
            "order {food_type} to my house",
            "i'm hungry order me {food_type}",
        ),
        "takeaway_query": (
            "where is my food",
            "how long until my {food_type} arrives",
            "has my {food_type} order been sent",
            "do they deliver {food_type}",
            "what's the status of my takeaway",
            "is my order on its way",
            "when will my {food_type} get here",
            "does the restaurant do {food_type} to take away",
        ),
        "news_query": (
            "what's the latest {news_topic} news",
            "tell me the news about {news_topic}",
            "any {news_topic} headlines {date}",
            "read me the news",
            "what happened in {news_topic} {date}",
            "give me the {news_topic} news from {place_name}",
            "what's in the news {date}",
            "update me on {news_topic}",
        ),
        "lists_createoradd": (
            "add {food_type} to my {list_name} list",
            "put {food_type} on the {list_name} list",
            "create a new {list_name} list",
            "make a {list_name} list",
            "i need {food_type} on my {list_name} list",
            "start a list called {list_name}",
            "add {food_type} to the list",
            "new {list_name} list please",
        ),
        "lists_query": (
            "what's on my {list_name} list",
            "read me the {list_name} list",
            "show my lists",
            "what do i have on the {list_name} list",
            "is there {food_type} on my {list_name} list",
            "how many items are on the {list_name} list",
            "tell me my {list_name} list",
            "open the {list_name} list",
        ),
        "lists_remove": (
            "remove {food_type} from my {list_name} list",
            "take {food_type} off the list",
            "delete my {list_name} list",
            "clear the {list_name} list",
            "cross {food_type} off my {list_name} list",
            "i don't need {food_type} anymore remove it",
            "get rid of the {list_name} list",
            "delete {food_type} from the {list_name} list",
        ),
        "qa_factoid": (
            "who is {person}",
            "tell me about {place_name}",
            "how many people live in {place_name}",
            "how far is {place_name} from here",
            "what is {place_name} famous for",
            "where was {person} born",
            "how old is {person}",
            "what is the population of {place_name}",
        ),
        "datetime_query": (
            "what time is it",
            "what's the time in {place_name}",
            "tell me the time in {place_name}",
            "what is the current time in {place_name}",
            "what's the date {date}",
            "what day is it today",
            "is it late in {place_name} right now",
            "what's the date",
        ),
        "audio_volume_up": (
            "turn it up",
            "volume up",
            "make it louder",
            "increase the volume",
            "louder please",
            "can you turn the volume up",
            "raise the sound",
            "i can't hear it turn it up",
        ),
        "audio_volume_mute": (
            "mute",
            "mute the speaker",
            "be quiet",
            "turn the sound off",
            "silence please",
            "stop talking",
            "mute the volume",
            "shut up",
        ),
    },
    "fr-FR": {
        "alarm_set": (
            "réveille-moi {date} à {time}",
            "mets un réveil à {time}",
            "programme une alarme pour {time} {date}",
            "je voudrais une alarme à {time}",
            "règle le réveil sur {time} {date}",
            "ajoute une alarme à {time}",
        ),
        "alarm_query": (
            "quelles alarmes j'ai {date}",
            "est-ce que j'ai un réveil {date}",
            "montre-moi mes alarmes",
            "à quelle heure sonne mon réveil {date}",
            "liste mes alarmes {date}",
            "quelles sont mes alarmes",
        ),
        "alarm_remove": (
            "supprime l'alarme de {time}",
            "annule mon réveil {date}",
            "enlève l'alarme de {time} {date}",
            "désactive le réveil de {time}",
            "je n'ai plus besoin de l'alarme de {time}",
            "efface mes alarmes {date}",
        ),
        "weather_query": (
            "est-ce qu'il va {weather_descriptor} {date} à {place_name}",
            "quel temps fera-t-il à {place_name} {date}",
            "va-t-il {weather_descriptor} à {place_name}",
            "donne-moi la météo à {place_name}",
            "quelle est la météo {date}",
            "dis-moi s'il va {weather_descriptor} {date}",
        ),
        "play_music": (
            "mets de la musique {music_genre}",
            "lance la musique {music_genre}",
            "je veux écouter {artist_name}",
            "mets {artist_name}",
            "fais-moi écouter du {music_genre}",
            "mets un morceau {music_genre} de l'artiste {artist_name}",
        ),
        "play_radio": (
            "mets {radio_name}",
            "allume la radio",
            "passe sur {radio_name}",
            "je veux écouter {radio_name}",
            "lance la station {radio_name}",
            "mets la radio sur {radio_name}",
        ),
        "calendar_set": (
            "ajoute {event_name} avec {person} {date} à {time}",
            "planifie {event_name} {date}",
            "note {event_name} à {time}",
            "mets {event_name} avec {person} dans mon agenda",
            "crée {event_name} pour {date}",
            "rappelle-moi {event_name} avec {person} {date}",
        ),
        "calendar_query": (
            "qu'est-ce que j'ai {date}",
            "qu'y a-t-il dans mon agenda {date}",
            "quand est-ce que je vois {person}",
            "est-ce que je suis libre {date} à {time}",
            "montre-moi mon agenda {date}",
            "ai-je un rendez-vous avec {person} {date}",
        ),
        "calendar_remove": (
            "annule mon rendez-vous avec {person}",
            "supprime l'événement {date} à {time}",
            "vide mon agenda {date}",
            "annule la réunion de {time}",
            "efface le rendez-vous avec {person} {date}",
            "retire tout ce que j'ai {date}",
        ),
        "iot_hue_lightoff": (
            "éteins la lumière dans {house_place}",
            "éteins les lampes dans {house_place}",
            "coupe la lumière",
            "fais le noir dans {house_place}",
            "tu peux éteindre dans {house_place}",
            "éteins tout dans {house_place}",
        ),
        "iot_hue_lighton": (
            "allume la lumière dans {house_place}",
            "allume les lampes dans {house_place}",
            "allume la lumière",
            "il fait trop sombre dans {house_place}",
            "tu peux allumer dans {house_place}",
            "mets de la lumière dans {house_place}",
        ),
        "iot_hue_lightchange": (
            "mets la lumière en {color_type}",
            "change la couleur dans {house_place} en {color_type}",
            "passe les lampes dans {house_place} en {color_type}",
            "règle la lumière sur {color_type}",
            "éclaire {house_place} en {color_type}",
            "mets la couleur {color_type} dans {house_place}",
        ),
        "transport_ticket": (
            "réserve un billet de {transport_type} pour {place_name} {date}",
            "achète-moi un billet de {transport_type} pour {place_name}",
            "je voudrais prendre le {transport_type} pour {place_name} {date}",
            "il me faut un billet de {transport_type} pour {place_name}",
            "réserve une place dans le {transport_type} pour {place_name}",
            "prends-moi un billet pour {place_name} en {transport_type} {date}",
        ),
        "transport_query": (
            "à quelle heure part le prochain {transport_type} pour {place_name}",
            "quand part le {transport_type} pour {place_name}",
            "est-ce que le {transport_type} de {time} est à l'heure",
            "combien de temps dure le trajet en {transport_type} jusqu'à {place_name}",
            "y a-t-il des retards sur le {transport_type} pour {place_name}",
            "y a-t-il un {transport_type} pour {place_name} après {time}",
        ),
        "email_sendemail": (
            "envoie un mail à {person}",
            "écris un courriel à {person}",
            "rédige un nouvel e-mail pour {person}",
            "réponds à {person} par mail",
            "envoie à {person} un mail pour dire que je serai en retard",
            "préviens {person} par e-mail",
        ),
        "email_query": (
            "est-ce que j'ai des nouveaux mails",
            "vérifie ma boîte mail",
            "est-ce que {person} m'a écrit",
            "lis-moi mes derniers mails",
            "quels mails ai-je reçus {date}",
            "montre-moi les mails envoyés par {person}",
        ),
        "takeaway_order": (
            "commande {food_type}",
            "je voudrais commander {food_type}",
            "fais-moi livrer {food_type}",
            "commande-moi {food_type} pour ce soir",
            "j'ai faim commande {food_type}",
            "je veux {food_type} à emporter",
        ),
        "takeaway_query": (
            "où en est ma commande",
            "quand est-ce que ma commande arrive",
            "est-ce qu'ils livrent {food_type}",
            "combien de temps pour la livraison",
            "est-ce que le restaurant fait {food_type} à emporter",
            "est-ce que le livreur est en route",
        ),
        "news_query": (
            "quelles sont les nouvelles {news_topic}",
            "donne-moi les infos {news_topic}",
            "quoi de neuf du côté {news_topic}",
            "lis-moi les actualités",
            "résume-moi l'actualité {news_topic} à {place_name}",
            "quelles sont les dernières nouvelles {news_topic} {date}",
        ),
        "lists_createoradd": (
            "ajoute {food_type} à ma liste de {list_name}",
            "mets {food_type} sur la liste de {list_name}",
            "crée une nouvelle liste de {list_name}",
            "fais une liste de {list_name}",
            "ajoute {food_type} à la liste",
            "il faut rajouter {food_type} à ma liste de {list_name}",
        ),
        "lists_query": (
            "qu'est-ce qu'il y a sur ma liste de {list_name}",
            "lis-moi la liste de {list_name}",
            "montre-moi mes listes",
            "combien d'articles sur la liste de {list_name}",
            "est-ce qu'il y a {food_type} sur ma liste de {list_name}",
            "ouvre ma liste de {list_name}",
        ),
        "lists_remove": (
            "enlève {food_type} de ma liste de {list_name}",
            "supprime ma liste de {list_name}",
            "retire {food_type} de la liste",
            "efface la liste de {list_name}",
            "raye {food_type} de ma liste de {list_name}",
            "vide la liste de {list_name}",
        ),
        "qa_factoid": (
            "qui est {person}",
            "combien d'habitants y a-t-il à {place_name}",
            "à quelle distance se trouve {place_name}",
            "que sais-tu sur {place_name}",
            "quel âge a {person}",
            "où est né {person}",
        ),
        "datetime_query": (
            "quelle heure est-il",
            "quelle heure est-il à {place_name}",
            "donne-moi l'heure à {place_name}",
            "quelle est la date {date}",
            "quel jour sommes-nous",
            "il est quelle heure à {place_name}",
        ),
        "audio_volume_up": (
            "monte le son",
            "plus fort",
            "augmente le volume",
            "tu peux monter le volume",
            "je n'entends rien monte le son",
            "mets plus fort",
        ),
        "audio_volume_mute": (
            "coupe le son",
            "silence",
            "mets en sourdine",
            "tais-toi",
            "désactive le son",
            "mets le volume à zéro",
        ),
    },
    "de-DE": {
        "alarm_set": (
            "weck mich {date} um {time}",
            "stell einen wecker auf {time}",
            "ich brauche einen wecker um {time} {date}",
            "stell den alarm für {time}",
            "neuer wecker um {time}",
            "kannst du mich {date} um {time} wecken",
        ),
        "alarm_query": (
            "welche wecker habe ich {date}",
            "zeig mir meine wecker",
            "habe ich {date} einen wecker gestellt",
            "wann klingelt mein wecker {date}",
            "liste meine alarme auf",
            "welche alarme sind {date} aktiv",
        ),
        "alarm_remove": (
            "lösche den wecker um {time}",
            "entferne meinen alarm {date}",
            "schalte den wecker um {time} aus",
            "ich brauche den wecker um {time} nicht mehr",
            "lösche alle wecker {date}",
            "deaktiviere den alarm um {time} {date}",
        ),
        "weather_query": (
            "wird es {date} in {place_name} {weather_descriptor}",
            "wie ist das wetter in {place_name}",
            "wie wird das wetter {date} in {place_name}",
            "wird es in {place_name} {weather_descriptor}",
            "brauche ich {date} einen regenschirm",
            "sag mir ob es {date} {weather_descriptor} wird",
        ),
        "play_music": (
            "spiel {music_genre}",
            "spiel etwas von {artist_name}",
            "ich möchte {music_genre} hören",
            "spiel lieder von {artist_name}",
            "mach musik von {artist_name} an",
            "leg etwas {music_genre} auf",
        ),
        "play_radio": (
            "spiel {radio_name}",
            "mach das radio an",
            "schalte auf {radio_name} um",
            "ich möchte {radio_name} hören",
            "starte den sender {radio_name}",
            "stell das radio auf {radio_name}",
        ),
        "calendar_set": (
            "trag {event_name} mit {person} {date} um {time} ein",
            "plane {event_name} {date}",
            "erinnere mich an {event_name} um {time}",
            "füge {event_name} mit {person} zu meinem kalender hinzu",
            "ich habe {date} um {time} {event_name}",
            "leg {date} {event_name} an",
        ),
        "calendar_query": (
            "was habe ich {date}",
            "was steht {date} in meinem kalender",
            "wann treffe ich {person}",
            "bin ich {date} um {time} frei",
            "zeig mir meinen kalender",
            "habe ich {date} einen termin mit {person}",
        ),
        "calendar_remove": (
            "sag den termin mit {person} ab",
            "lösche den termin {date} um {time}",
            "leere meinen kalender {date}",
            "streiche das treffen um {time}",
            "entferne den termin mit {person} {date}",
            "lösche alles {date} aus meinem kalender",
        ),
        "iot_hue_lightoff": (
            "mach das licht {house_place} aus",
            "schalte das licht {house_place} aus",
            "licht aus",
            "lampen {house_place} aus",
            "kannst du das licht {house_place} ausmachen",
            "mach es {house_place} dunkel",
        ),
        "iot_hue_lighton": (
            "mach das licht {house_place} an",
            "schalte die lampen {house_place} ein",
            "licht an",
            "licht {house_place} an bitte",
            "kannst du das licht {house_place} anmachen",
            "es ist zu dunkel {house_place}",
        ),
        "iot_hue_lightchange": (
            "mach das licht {color_type}",
            "stell die lampe {house_place} auf {color_type}",
            "ändere die farbe {house_place} zu {color_type}",
            "färbe das licht {house_place} {color_type}",
            "wechsle die lichtfarbe auf {color_type}",
            "licht {house_place} auf {color_type} bitte",
        ),
        "transport_ticket": (
            "buch ein ticket für den {transport_type} nach {place_name} {date}",
            "ich brauche eine fahrkarte für den {transport_type} nach {place_name}",
            "kauf mir ein ticket nach {place_name} für den {transport_type}",
            "reserviere einen platz im {transport_type} nach {place_name} {date}",
            "ich will {date} mit dem {transport_type} nach {place_name}",
            "besorg mir ein ticket für den {transport_type} nach {place_name}",
        ),
        "transport_query": (
            "wann fährt der nächste {transport_type} nach {place_name}",
            "um wie viel uhr fährt der {transport_type} nach {place_name}",
            "ist der {transport_type} um {time} pünktlich",
            "wie lange braucht der {transport_type} nach {place_name}",
            "gibt es verspätungen beim {transport_type} nach {place_name}",
            "gibt es nach {time} noch einen {transport_type} nach {place_name}",
        ),
        "email_sendemail": (
            "schick eine e-mail an {person}",
            "schreib {person} eine mail",
            "verfasse eine neue e-mail an {person}",
            "antworte {person} per mail",
            "sende {person} eine nachricht per e-mail",
            "schreib eine mail an {person} dass ich später komme",
        ),
        "email_query": (
            "habe ich neue e-mails",
            "überprüfe meine mails",
            "hat {person} mir geschrieben",
            "lies mir meine neuesten mails vor",
            "welche mails habe ich {date} bekommen",
            "zeig mir die mails von {person}",
        ),
        "takeaway_order": (
            "bestell {food_type}",
            "ich möchte {food_type} bestellen",
            "lass mir {food_type} liefern",
            "bestell mir {food_type} zum abendessen",
            "ich habe hunger bestell {food_type}",
            "kannst du {food_type} zum mitnehmen bestellen",
        ),
        "takeaway_query": (
            "wo bleibt mein essen",
            "wann kommt meine bestellung",
            "liefern die auch {food_type}",
            "wie lange dauert die lieferung",
            "hat das restaurant {food_type} zum mitnehmen",
            "ist der lieferant schon unterwegs",
        ),
        "news_query": (
            "was gibt es neues über {news_topic}",
            "gib mir die nachrichten zum thema {news_topic}",
            "lies mir die nachrichten vor",
            "was sind die schlagzeilen zu {news_topic} {date}",
            "neuigkeiten über {news_topic} aus {place_name}",
            "gibt es neuigkeiten zum thema {news_topic}",
        ),
        "lists_createoradd": (
            "füge {food_type} zu meiner {list_name} hinzu",
            "setz {food_type} auf die {list_name}",
            "erstelle eine neue {list_name}",
            "leg eine {list_name} an",
            "schreib {food_type} auf die liste",
            "ich brauche {food_type} auf meiner {list_name}",
        ),
        "lists_query": (
            "was steht auf meiner {list_name}",
            "lies mir die {list_name} vor",
            "zeig mir meine listen",
            "wie viele sachen stehen auf der {list_name}",
            "steht {food_type} auf meiner {list_name}",
            "öffne meine {list_name}",
        ),
        "lists_remove": (
            "entferne {food_type} von meiner {list_name}",
            "lösche meine {list_name}",
            "streich {food_type} von der liste",
            "leere die {list_name}",
            "nimm {food_type} von der {list_name}",
            "ich brauche keine {list_name} mehr",
        ),
        "qa_factoid": (
            "wer ist {person}",
            "wie viele einwohner hat {place_name}",
            "wie weit ist es nach {place_name}",
            "erzähl mir etwas über {place_name}",
            "wie alt ist {person}",
            "wo wurde {person} geboren",
        ),
        "datetime_query": (
            "wie spät ist es",
            "wie spät ist es in {place_name}",
            "sag mir die uhrzeit in {place_name}",
            "welches datum ist {date}",
            "welcher tag ist heute",
            "wie viel uhr ist es gerade in {place_name}",
        ),
        "audio_volume_up": (
            "mach lauter",
            "lauter bitte",
            "erhöhe die lautstärke",
            "dreh die musik auf",
            "kannst du lauter machen",
            "ich höre nichts mach lauter",
        ),
        "audio_volume_mute": (
            "stumm schalten",
            "ton aus",
            "sei still",
            "schalte den ton stumm",
            "ruhe bitte",
            "mach den lautsprecher stumm",
        ),
    },
    "it-IT": {
        "alarm_set": (
            "svegliami {date} alle {time}",
            "imposta una sveglia alle {time}",
            "metti la sveglia alle {time} {date}",
            "ho bisogno di una sveglia alle {time}",
            "crea una sveglia per {date} alle {time}",
            "puoi svegliarmi alle {time}",
        ),
        "alarm_query": (
            "quali sveglie ho {date}",
            "mostrami le mie sveglie",
            "ho una sveglia {date}",
            "a che ora suona la sveglia {date}",
            "elenca le mie sveglie",
            "che sveglie ci sono",
        ),
        "alarm_remove": (
            "cancella la sveglia delle {time}",
            "elimina la sveglia {date}",
            "togli la sveglia delle {time}",
            "disattiva la sveglia delle {time} {date}",
            "non mi serve più la sveglia delle {time}",
            "rimuovi tutte le sveglie {date}",
        ),
        "weather_query": (
            "dimmi se {date} a {place_name} {weather_descriptor}",
            "che tempo fa a {place_name}",
            "che tempo farà {date} a {place_name}",
            "sai se {weather_descriptor} a {place_name}",
            "mi serve l'ombrello {date}",
            "previsioni meteo per {place_name}",
        ),
        "play_music": (
            "metti musica {music_genre}",
            "voglio ascoltare {artist_name}",
            "fammi sentire qualcosa di {artist_name}",
            "suona un po' di musica {music_genre}",
            "riproduci le canzoni di {artist_name}",
            "metti la playlist {music_genre}",
        ),
        "play_radio": (
            "metti {radio_name}",
            "accendi la radio",
            "sintonizzati su {radio_name}",
            "voglio ascoltare {radio_name}",
            "cambia stazione su {radio_name}",
            "fammi sentire {radio_name}",
        ),
        "calendar_set": (
            "aggiungi {event_name} con {person} {date} alle {time}",
            "programma {event_name} {date}",
            "ricordami {event_name} alle {time}",
            "segna {event_name} con {person} in agenda",
            "ho {event_name} {date} alle {time}",
            "fissa {event_name} con {person} {date}",
        ),
        "calendar_query": (
            "cosa ho in agenda {date}",
            "che impegni ho {date}",
            "quando vedo {person}",
            "sono libero {date} alle {time}",
            "ho un appuntamento con {person} {date}",
            "mostrami l'agenda",
        ),
        "calendar_remove": (
            "cancella l'appuntamento con {person}",
            "elimina l'evento {date} alle {time}",
            "svuota la mia agenda {date}",
            "annulla la riunione delle {time}",
            "togli l'incontro con {person} {date}",
            "cancella tutto {date}",
        ),
        "iot_hue_lightoff": (
            "spegni la luce {house_place}",
            "spegni le luci {house_place}",
            "spegni tutte le luci",
            "luci spente {house_place}",
            "puoi spegnere la lampada {house_place}",
            "fai buio {house_place}",
        ),
        "iot_hue_lighton": (
            "accendi la luce {house_place}",
            "accendi le luci {house_place}",
            "accendi la luce",
            "luci accese {house_place}",
            "puoi accendere la lampada {house_place}",
            "c'è troppo buio {house_place}",
        ),
        "iot_hue_lightchange": (
            "cambia il colore delle luci in {color_type}",
            "metti le luci {house_place} di colore {color_type}",
            "imposta la luce {house_place} sul colore {color_type}",
            "voglio le luci di colore {color_type}",
            "cambia la luce {house_place} in {color_type}",
            "luce {house_place} colore {color_type} per favore",
        ),
        "transport_ticket": (
            "prenota un biglietto del {transport_type} per {place_name} {date}",
            "comprami un biglietto del {transport_type} per {place_name}",
            "mi serve un biglietto del {transport_type} per {place_name}",
            "voglio andare a {place_name} in {transport_type} {date}",
            "prenota un posto sul {transport_type} per {place_name}",
            "trovami un biglietto del {transport_type} per {place_name} {date}",
        ),
        "transport_query": (
            "quando parte il prossimo {transport_type} per {place_name}",
            "a che ora parte il {transport_type} per {place_name}",
            "il {transport_type} delle {time} è in orario",
            "quanto ci mette il {transport_type} per {place_name}",
            "ci sono ritardi sul {transport_type} per {place_name}",
            "c'è un {transport_type} per {place_name} dopo le {time}",
        ),
        "email_sendemail": (
            "manda una email a {person}",
            "scrivi una mail a {person}",
            "componi una nuova email per {person}",
            "rispondi a {person} per email",
            "invia a {person} una mail per dire che arrivo tardi",
            "avvisa {person} con una email",
        ),
        "email_query": (
            "ho nuove email",
            "controlla la posta",
            "{person} mi ha scritto",
            "leggimi le ultime email",
            "che email ho ricevuto {date}",
            "mostrami le email di {person}",
        ),
        "takeaway_order": (
            "ordina {food_type}",
            "vorrei ordinare {food_type}",
            "fammi portare {food_type} a casa",
            "ordinami {food_type} per cena",
            "ho fame ordina {food_type}",
            "prendi {food_type} da asporto",
        ),
        "takeaway_query": (
            "dov'è il mio cibo",
            "quando arriva il mio ordine",
            "consegnano anche {food_type}",
            "quanto manca alla consegna",
            "il ristorante fa {food_type} da asporto",
            "il fattorino è già partito",
        ),
        "news_query": (
            "quali sono le notizie di {news_topic}",
            "dammi le ultime notizie di {news_topic}",
            "leggimi le notizie",
            "novità di {news_topic} da {place_name}",
            "i titoli di {news_topic} {date}",
            "aggiornami sulle notizie di {news_topic}",
        ),
        "lists_createoradd": (
            "aggiungi {food_type} alla lista {list_name}",
            "metti {food_type} nella lista {list_name}",
            "crea una nuova lista {list_name}",
            "fai una lista {list_name}",
            "aggiungi {food_type} alla lista",
            "segna {food_type} sulla lista {list_name}",
        ),
        "lists_query": (
            "cosa c'è nella lista {list_name}",
            "leggimi la lista {list_name}",
            "mostrami le mie liste",
            "quante cose ci sono nella lista {list_name}",
            "c'è {food_type} nella lista {list_name}",
            "apri la lista {list_name}",
        ),
        "lists_remove": (
            "togli {food_type} dalla lista {list_name}",
            "cancella la lista {list_name}",
            "elimina {food_type} dalla lista",
            "svuota la lista {list_name}",
            "rimuovi {food_type} dalla lista {list_name}",
            "non mi serve più la lista {list_name}",
        ),
        "qa_factoid": (
            "chi è {person}",
            "quanti abitanti ha {place_name}",
            "quanto dista {place_name}",
            "parlami di {place_name}",
            "quanti anni ha {person}",
            "dove è nato {person}",
        ),
        "datetime_query": (
            "che ore sono",
            "che ore sono a {place_name}",
            "dimmi l'ora a {place_name}",
            "che giorno è {date}",
            "che data è oggi",
            "che ora è adesso a {place_name}",
        ),
        "audio_volume_up": (
            "alza il volume",
            "più forte",
            "aumenta il volume",
            "puoi alzare il volume",
            "non sento niente alza il volume",
            "metti più forte",
        ),
        "audio_volume_mute": (
            "silenzio",
            "togli l'audio",
            "disattiva l'audio",
            "stai zitto",
            "metti in muto",
            "azzera il volume",
        ),
    },
    "es-ES": {
        "alarm_set": (
            "despiértame {date} a las {time}",
            "pon una alarma a las {time}",
            "programa la alarma para las {time} {date}",
            "necesito una alarma a las {time}",
            "crea una alarma a las {time} {date}",
            "puedes despertarme a las {time}",
        ),
        "alarm_query": (
            "qué alarmas tengo {date}",
            "muéstrame mis alarmas",
            "tengo alguna alarma {date}",
            "a qué hora suena mi alarma {date}",
            "enumera mis alarmas",
            "cuáles son mis alarmas",
        ),
        "alarm_remove": (
            "borra la alarma de las {time}",
            "cancela mi alarma {date}",
            "quita la alarma de las {time} {date}",
            "desactiva la alarma de las {time}",
            "ya no necesito la alarma de las {time}",
            "elimina todas las alarmas {date}",
        ),
        "weather_query": (
            "dime si {weather_descriptor} {date} en {place_name}",
            "qué tiempo hace en {place_name}",
            "qué tiempo hará {date} en {place_name}",
            "sabes si {weather_descriptor} en {place_name}",
            "necesito paraguas {date}",
            "dame el pronóstico para {place_name}",
        ),
        "play_music": (
            "pon música {music_genre}",
            "quiero escuchar a {artist_name}",
            "pon canciones de {artist_name}",
            "reproduce algo de música {music_genre}",
            "ponme algo de {artist_name}",
            "pon mi lista de música {music_genre}",
        ),
        "play_radio": (
            "pon {radio_name}",
            "enciende la radio",
            "sintoniza {radio_name}",
            "quiero escuchar {radio_name}",
            "cambia a la emisora {radio_name}",
            "pon la radio en {radio_name}",
        ),
        "calendar_set": (
            "añade {event_name} con {person} {date} a las {time}",
            "programa {event_name} {date}",
            "recuérdame {event_name} a las {time}",
            "apunta {event_name} con {person} en mi agenda",
            "tengo {event_name} {date} a las {time}",
            "organiza {event_name} con {person} {date}",
        ),
        "calendar_query": (
            "qué tengo {date}",
            "qué hay en mi agenda {date}",
            "cuándo veo a {person}",
            "estoy libre {date} a las {time}",
            "tengo una cita con {person} {date}",
            "enséñame mi agenda",
        ),
        "calendar_remove": (
            "cancela mi cita con {person}",
            "borra el evento {date} a las {time}",
            "vacía mi agenda {date}",
            "anula la reunión de las {time}",
            "quita la cita con {person} {date}",
            "elimina todo lo que tengo {date}",
        ),
        "iot_hue_lightoff": (
            "apaga la luz en {house_place}",
            "apaga las luces en {house_place}",
            "apaga todas las luces",
            "deja a oscuras {house_place}",
            "puedes apagar la lámpara en {house_place}",
            "quiero las luces apagadas en {house_place}",
        ),
        "iot_hue_lighton": (
            "enciende la luz en {house_place}",
            "enciende las luces en {house_place}",
            "enciende la luz",
            "ilumina {house_place}",
            "puedes encender la lámpara en {house_place}",
            "está muy oscuro en {house_place}",
        ),
        "iot_hue_lightchange": (
            "pon las luces en {color_type}",
            "cambia la luz en {house_place} a {color_type}",
            "quiero la luz de color {color_type}",
            "pon la lámpara en {house_place} de color {color_type}",
            "cambia el color de las luces a {color_type}",
            "ilumina {house_place} de color {color_type}",
        ),
        "transport_ticket": (
            "reserva un billete de {transport_type} para {place_name} {date}",
            "cómprame un billete de {transport_type} a {place_name}",
            "necesito un billete de {transport_type} para {place_name}",
            "quiero ir a {place_name} en {transport_type} {date}",
            "resérvame un asiento en el {transport_type} a {place_name}",
            "búscame un billete de {transport_type} para {place_name} {date}",
        ),
        "transport_query": (
            "cuándo sale el próximo {transport_type} a {place_name}",
            "a qué hora sale el {transport_type} para {place_name}",
            "el {transport_type} de las {time} va con retraso",
            "cuánto tarda el {transport_type} a {place_name}",
            "hay retrasos en el {transport_type} a {place_name}",
            "hay algún {transport_type} a {place_name} después de las {time}",
        ),
        "email_sendemail": (
            "envía un correo a {person}",
            "escribe un email a {person}",
            "redacta un correo nuevo para {person}",
            "contesta a {person} por correo",
            "manda a {person} un correo diciendo que llego tarde",
            "avisa a {person} por email",
        ),
        "email_query": (
            "tengo correos nuevos",
            "revisa mi correo",
            "me ha escrito {person}",
            "léeme los últimos correos",
            "qué correos recibí {date}",
            "muéstrame los correos de {person}",
        ),
        "takeaway_order": (
            "pide {food_type}",
            "quiero pedir {food_type}",
            "pide {food_type} a domicilio",
            "pídeme {food_type} para cenar",
            "tengo hambre pide {food_type}",
            "encarga {food_type} para llevar",
        ),
        "takeaway_query": (
            "dónde está mi comida",
            "cuándo llega mi pedido",
            "tienen {food_type} a domicilio",
            "cuánto falta para la entrega",
            "el restaurante hace {food_type} para llevar",
            "el repartidor ya viene",
        ),
        "news_query": (
            "cuáles son las noticias de {news_topic}",
            "dame las últimas noticias de {news_topic}",
            "léeme las noticias",
            "novedades de {news_topic} en {place_name}",
            "titulares de {news_topic} {date}",
            "ponme al día sobre {news_topic}",
        ),
        "lists_createoradd": (
            "añade {food_type} a mi lista {list_name}",
            "pon {food_type} en la lista {list_name}",
            "crea una nueva lista {list_name}",
            "haz una lista {list_name}",
            "añade {food_type} a la lista",
            "apunta {food_type} en mi lista {list_name}",
        ),
        "lists_query": (
            "qué hay en mi lista {list_name}",
            "léeme la lista {list_name}",
            "muéstrame mis listas",
            "cuántas cosas hay en la lista {list_name}",
            "hay {food_type} en mi lista {list_name}",
            "abre la lista {list_name}",
        ),
        "lists_remove": (
            "quita {food_type} de mi lista {list_name}",
            "borra la lista {list_name}",
            "elimina {food_type} de la lista",
            "vacía la lista {list_name}",
            "tacha {food_type} de mi lista {list_name}",
            "ya no necesito la lista {list_name}",
        ),
        "qa_factoid": (
            "quién es {person}",
            "cuántos habitantes tiene {place_name}",
            "a qué distancia está {place_name}",
            "háblame de {place_name}",
            "cuántos años tiene {person}",
            "dónde nació {person}",
        ),
        "datetime_query": (
            "qué hora es",
            "qué hora es en {place_name}",
            "dime la hora en {place_name}",
            "qué día es {date}",
            "qué fecha es hoy",
            "qué hora es ahora mismo en {place_name}",
        ),
        "audio_volume_up": (
            "sube el volumen",
            "más alto",
            "aumenta el volumen",
            "puedes subir el volumen",
            "no oigo nada sube el volumen",
            "ponlo más fuerte",
        ),
        "audio_volume_mute": (
            "silencio",
            "quita el sonido",
            "silencia el altavoz",
            "cállate",
            "pon en silencio",
            "baja el volumen a cero",
        ),
    },
    "pt-PT": {
        "alarm_set": (
            "acorda-me {date} às {time}",
            "põe um alarme para as {time}",
            "define o despertador para as {time} {date}",
            "preciso de um alarme às {time}",
            "cria um alarme às {time} {date}",
            "podes acordar-me às {time}",
        ),
        "alarm_query": (
            "que alarmes tenho {date}",
            "mostra-me os meus alarmes",
            "tenho algum alarme {date}",
            "a que horas toca o despertador {date}",
            "lista os meus alarmes",
            "quais são os meus alarmes",
        ),
        "alarm_remove": (
            "apaga o alarme das {time}",
            "cancela o meu alarme {date}",
            "tira o alarme das {time} {date}",
            "desativa o despertador das {time}",
            "já não preciso do alarme das {time}",
            "elimina todos os alarmes {date}",
        ),
        "weather_query": (
            "diz-me se {weather_descriptor} {date} em {place_name}",
            "como está o tempo em {place_name}",
            "que tempo vai fazer {date} em {place_name}",
            "sabes se {weather_descriptor} em {place_name}",
            "preciso de guarda-chuva {date}",
            "dá-me a previsão para {place_name}",
        ),
        "play_music": (
            "põe música {music_genre}",
            "quero ouvir {artist_name}",
            "põe canções de {artist_name}",
            "toca um pouco de música {music_genre}",
            "põe alguma coisa de {artist_name}",
            "põe a minha lista de música {music_genre}",
        ),
        "play_radio": (
            "põe {radio_name}",
            "liga o rádio",
            "sintoniza {radio_name}",
            "quero ouvir {radio_name}",
            "muda para a estação {radio_name}",
            "põe o rádio na {radio_name}",
        ),
        "calendar_set": (
            "adiciona {event_name} com {person} {date} às {time}",
            "agenda {event_name} {date}",
            "lembra-me de {event_name} às {time}",
            "marca {event_name} com {person} na agenda",
            "tenho {event_name} {date} às {time}",
            "organiza {event_name} com {person} {date}",
        ),
        "calendar_query": (
            "o que tenho {date}",
            "o que há na minha agenda {date}",
            "quando é que vou ver {person}",
            "estou livre {date} às {time}",
            "tenho alguma coisa com {person} {date}",
            "mostra-me a agenda",
        ),
        "calendar_remove": (
            "cancela a reunião com {person}",
            "apaga o evento {date} às {time}",
            "limpa a minha agenda {date}",
            "anula a reunião das {time}",
            "tira o encontro com {person} {date}",
            "elimina tudo o que tenho {date}",
        ),
        "iot_hue_lightoff": (
            "desliga a luz {house_place}",
            "apaga as luzes {house_place}",
            "desliga todas as luzes",
            "deixa tudo às escuras {house_place}",
            "podes desligar o candeeiro {house_place}",
            "quero as luzes apagadas {house_place}",
        ),
        "iot_hue_lighton": (
            "liga a luz {house_place}",
            "acende as luzes {house_place}",
            "liga a luz",
            "está muito escuro {house_place}",
            "podes ligar o candeeiro {house_place}",
            "quero as luzes acesas {house_place}",
        ),
        "iot_hue_lightchange": (
            "muda a luz para {color_type}",
            "põe as luzes {house_place} em {color_type}",
            "quero a luz de cor {color_type}",
            "muda a cor do candeeiro {house_place} para {color_type}",
            "muda as luzes {house_place} para {color_type}",
            "altera a cor das luzes para {color_type}",
        ),
        "transport_ticket": (
            "reserva um bilhete de {transport_type} para {place_name} {date}",
            "compra-me um bilhete de {transport_type} para {place_name}",
            "preciso de um bilhete de {transport_type} para {place_name}",
            "quero ir para {place_name} de {transport_type} {date}",
            "reserva-me um lugar no {transport_type} para {place_name}",
            "arranja-me um bilhete de {transport_type} para {place_name} {date}",
        ),
        "transport_query": (
            "quando parte o próximo {transport_type} para {place_name}",
            "a que horas sai o {transport_type} para {place_name}",
            "o {transport_type} das {time} está atrasado",
            "quanto tempo demora o {transport_type} para {place_name}",
            "há atrasos no {transport_type} para {place_name}",
            "há algum {transport_type} para {place_name} depois das {time}",
        ),
        "email_sendemail": (
            "envia um email para {person}",
            "escreve um email para {person}",
            "redige um novo email para {person}",
            "responde a {person} por email",
            "manda um email para {person} a dizer que chego tarde",
            "avisa {person} por email",
        ),
        "email_query": (
            "tenho emails novos",
            "verifica o meu correio",
            "{person} escreveu-me",
            "lê-me os últimos emails",
            "que emails recebi {date}",
            "mostra-me os emails de {person}",
        ),
        "takeaway_order": (
            "encomenda {food_type}",
            "quero encomendar {food_type}",
            "pede {food_type} para entregar em casa",
            "encomenda-me {food_type} para o jantar",
            "tenho fome encomenda {food_type}",
            "pede {food_type} para levar",
        ),
        "takeaway_query": (
            "onde está a minha comida",
            "quando chega a minha encomenda",
            "eles entregam {food_type}",
            "quanto falta para a entrega",
            "o restaurante faz {food_type} para fora",
            "o estafeta já vem a caminho",
        ),
        "news_query": (
            "quais são as notícias de {news_topic}",
            "dá-me as últimas notícias de {news_topic}",
            "lê-me as notícias",
            "novidades de {news_topic} em {place_name}",
            "manchetes de {news_topic} {date}",
            "põe-me a par das notícias de {news_topic}",
        ),
        "lists_createoradd": (
            "adiciona {food_type} à minha lista {list_name}",
            "põe {food_type} na lista {list_name}",
            "cria uma nova lista {list_name}",
            "faz uma lista {list_name}",
            "adiciona {food_type} à lista",
            "aponta {food_type} na minha lista {list_name}",
        ),
        "lists_query": (
            "o que está na minha lista {list_name}",
            "lê-me a lista {list_name}",
            "mostra-me as minhas listas",
            "quantas coisas há na lista {list_name}",
            "há {food_type} na minha lista {list_name}",
            "abre a lista {list_name}",
        ),
        "lists_remove": (
            "tira {food_type} da minha lista {list_name}",
            "apaga a lista {list_name}",
            "remove {food_type} da lista",
            "esvazia a lista {list_name}",
            "risca {food_type} da minha lista {list_name}",
            "já não preciso da lista {list_name}",
        ),
        "qa_factoid": (
            "quem é {person}",
            "quantos habitantes tem {place_name}",
            "a que distância fica {place_name}",
            "fala-me sobre {place_name}",
            "que idade tem {person}",
            "onde nasceu {person}",
        ),
        "datetime_query": (
            "que horas são",
            "que horas são em {place_name}",
            "diz-me as horas em {place_name}",
            "que dia é {date}",
            "que data é hoje",
            "que horas são agora em {place_name}",
        ),
        "audio_volume_up": (
            "aumenta o volume",
            "mais alto",
            "sobe o som",
            "podes aumentar o volume",
            "não ouço nada aumenta o som",
            "põe mais alto",
        ),
        "audio_volume_mute": (
            "silêncio",
            "tira o som",
            "silencia o altifalante",
            "cala-te",
            "põe em silêncio",
            "baixa o volume para zero",
        ),
    },
}

_MARKED = re.compile(r"\[([^\]]+)\]")
_SPOKEN_NAME = re.compile(r"[^\W\d_]+(?:[ '-][^\W\d_]+)*")
"""Letters in words joined by spaces, apostrophes or hyphens: no digits, titles with dots, commas."""


def unmark(value: str) -> tuple[str, str]:
    """Split a slot value into its spoken text and entity filler.

    ``"in der [küche]"`` -> ``("in der küche", "küche")``; a value without brackets is all entity.
    """
    match = _MARKED.search(value)
    if match is None:
        return value, value
    return value[: match.start()] + match.group(1) + value[match.end() :], match.group(1)


def template_slots(template: str) -> tuple[str, ...]:
    """The entity types of a template's ``{slots}``, in order."""
    return tuple(slot for _, slot, _, _ in Formatter().parse(template) if slot is not None)


class SlotSampler:
    """Draws slot values for one locale; the same seed gives the same sequence of values.

    Args:
        locale: One of ``LOCALES``.
        seed: Seeds both the choices here and Faker's generator.
    """

    def __init__(self, locale: str, seed: int | str) -> None:
        self.style = STYLES[locale]
        self._tables = VALUES[locale]
        self._rng = random.Random(seed)
        self._faker = Faker(self.style.faker)
        self._faker.seed_instance(self._rng.getrandbits(64))
        self._weekdays = [name.lower() for name in get_day_names("wide", locale=self.style.babel).values()]
        self._months = [name.lower() for name in get_month_names("wide", locale=self.style.babel).values()]
        self._made = {
            "time": self._time,
            "date": self._date,
            "radio_name": self._radio_name,
            "person": self._person,
            "artist_name": self._full_name,
            "place_name": self._place_name,
        }

    def sample(self, entity_type: str) -> str:
        """A value for ``entity_type``, possibly with its entity part in brackets."""
        if entity_type in self._tables:
            return self._rng.choice(self._tables[entity_type])
        return self._made[entity_type]()

    def _number(self, n: int, ordinal: bool = False) -> str:
        return num2words(n, lang=self.style.number_lang, to="ordinal" if ordinal else "cardinal")

    def _time(self) -> str:
        hour = self._rng.choice(self.style.hours)
        return self._rng.choice(self.style.times).format(
            h=self._number(hour), next_h=self._number(hour + 1), m=self._number(self._rng.choice(MINUTES))
        )

    def _date(self) -> str:
        style = self.style
        kind = self._rng.choice(("relative", "weekday", "day_month"))
        if kind == "relative":
            return self._rng.choice(style.relative_days)
        if kind == "weekday":
            return self._rng.choice(style.weekdays).format(day=self._rng.choice(self._weekdays))
        day = self._rng.choice([d for d in range(1, 29) if d not in style.skip_days])
        if day == 1 and style.first_day:
            day_words = style.first_day
        elif style.ordinal_days:
            day_words = self._number(day, ordinal=True) + style.ordinal_suffix
        else:
            day_words = self._number(day)
        return style.day_month.format(day=day_words, month=self._rng.choice(self._months))

    def _radio_name(self) -> str:
        return self._rng.choice(self.style.radio).format(n=self._number(self._rng.randint(1, 99)))

    def _spoken(self, make: Callable[[], str]) -> str:
        """Lower-cased Faker output, redrawn until it is plain words (no titles, digits, dots)."""
        for _ in range(100):
            value = make().lower()
            if _SPOKEN_NAME.fullmatch(value):
                return value
        raise RuntimeError(f"Faker {self.style.faker} gave no speakable value in 100 draws")

    def _person(self) -> str:
        return self._spoken(self._faker.first_name) if self._rng.random() < 0.6 else self._full_name()

    def _full_name(self) -> str:
        return f"{self._spoken(self._faker.first_name)} {self._spoken(self._faker.last_name)}"

    def _place_name(self) -> str:
        cities = listed_cities(self.style.faker)
        return self._rng.choice(cities) if cities else self._spoken(self._faker.city)


def render(template: str, sampler: SlotSampler) -> tuple[str, tuple[Entity, ...]]:
    """Fill a template's slots: the spoken text and its entities in reading order."""
    pieces: list[str] = []
    entities: list[Entity] = []
    for literal, slot, _, _ in Formatter().parse(template):
        pieces.append(literal)
        if slot is not None:
            text, filler = unmark(sampler.sample(slot))
            pieces.append(text)
            entities.append(Entity(slot, filler))
    return " ".join("".join(pieces).split()), tuple(entities)


def lexicon_fingerprint() -> str:
    """A short hash of all the content above, so that a corpus cache notices when it changes."""
    content = {
        "intents": INTENTS,
        "templates": TEMPLATES,
        "values": VALUES,
        "styles": {locale: asdict(style) for locale, style in STYLES.items()},
        "minutes": MINUTES,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


@cache
def listed_cities(faker_locale: str) -> tuple[str, ...]:
    """Faker's city list for locales that have one, sorted.

    Faker builds ``it_IT``'s list from a set, so its order (and ``Faker.city()`` under a fixed
    seed) changes with ``PYTHONHASHSEED`` from one process to the next; sorting makes it stable.
    """
    try:
        module = importlib.import_module(f"faker.providers.address.{faker_locale}")
    except ImportError:
        return ()
    cities = getattr(module.Provider, "cities", None) or ()
    return tuple(sorted({city.lower() for city in cities if _SPOKEN_NAME.fullmatch(city.lower())}))
