"""Where the demo tasks' answers come from: seeded item sources, one per kind of task.

Each source is an ``items(rng, n)`` function drawing ``n`` distinct ``(slots, answer)`` pairs
from a seeded :class:`random.Random`. Content is real where a package has it: CLDR names and
formats via Babel, number words via num2words; arithmetic, strings, lists and classification
are computed. :mod:`zsg_lib.data.demo_tasks` names the tasks built from them.

>>> import random
>>> yes_no(is_prime, 2, 50)(random.Random(0), 2)
[({'x': '43'}, 'yes'), ({'x': '38'}, 'no')]
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from functools import cache

from babel import Locale
from babel.dates import format_date
from babel.languages import get_official_languages
from babel.numbers import format_currency, format_decimal, get_territory_currencies
from num2words import num2words

Item = tuple[dict[str, str], str]  # (template slots, answer)
Items = Callable[[random.Random, int], list[Item]]

LANG = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
        "nl": "Dutch", "pt": "Portuguese", "pl": "Polish", "sv": "Swedish", "da": "Danish"}


def draw(pool: list[Item], rng: random.Random, n: int) -> list[Item]:
    """n distinct items of a fixed pool, in random order."""
    if len(pool) < n:
        raise ValueError(f"pool of {len(pool)} items is smaller than {n}")
    return rng.sample(pool, n)


def _generate(make: Callable[[random.Random], Item], rng: random.Random, n: int) -> list[Item]:
    """n items with distinct prompts from a random generator."""
    seen: dict[tuple, Item] = {}
    for _ in range(100 * n):
        slots, answer = make(rng)
        seen.setdefault(tuple(sorted(slots.items())), (slots, answer))
        if len(seen) == n:
            return list(seen.values())
    raise ValueError(f"could not draw {n} distinct items")


# ---- CLDR name translation -------------------------------------------------------------

@cache
def _names(kind: str, lang: str) -> dict[str, str]:
    loc = Locale.parse(lang)
    if kind == "country":  # two-letter codes only ("001" is a region); no pseudo-territories
        names = {k: v for k, v in loc.territories.items()
                 if len(k) == 2 and k.isalpha() and k not in _NOT_COUNTRIES}
    elif kind == "language":
        names = {k: v for k, v in loc.languages.items() if "_" not in k and len(k) <= 3}
    else:
        names = dict(loc.currencies)
    # Short, current names only: "Brazilian New Cruzado (1989–1990)" is neither.
    return {k: v for k, v in names.items()
            if "(" not in v and not any(c.isdigit() for c in v) and len(v) <= 30}


_NOT_COUNTRIES = {"XA", "XB", "ZZ", "QO", "EU", "EZ", "UN"}


def name_pairs(kind: str, src: str, tgt: str) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        a, b = _names(kind, src), _names(kind, tgt)
        pool = [({"x": a[k]}, b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]]
        return draw(pool, rng, n)
    return items


def date_pairs(pattern: str, src: str, tgt: str) -> Items:
    days = [dt.date(2001, 1, 1) + dt.timedelta(d) for d in range(365)]

    def items(rng: random.Random, n: int) -> list[Item]:
        pool = {format_date(d, pattern, locale=src): format_date(d, pattern, locale=tgt)
                for d in days}
        return draw([({"x": k}, v) for k, v in sorted(pool.items())], rng, n)
    return items


# ---- numbers in words and locale formats -------------------------------------------------

def n2w(to: str, lang: str, lo: int, hi: int, reverse: bool = False) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        nums = rng.sample(range(lo, hi), n)
        pairs = [(str(k), num2words(k, lang=lang, to=to)) for k in nums]
        return [({"x": w}, d) if reverse else ({"x": d}, w) for d, w in pairs]
    return items


def formatted(kind: str, locale: str, currency: str = "") -> Items:
    def make(rng: random.Random) -> Item:
        if kind == "number":
            x = round(rng.uniform(1000, 9_999_999), 2)
            return {"x": f"{x:.2f}"}, format_decimal(x, locale=locale)
        if kind == "currency":
            x = round(rng.uniform(1, 99_999), 2)
            return {"x": f"{x:.2f}"}, format_currency(x, currency, locale=locale)
        style = kind.split(":")[1]
        d = dt.date(1950, 1, 1) + dt.timedelta(rng.randrange(365 * 80))
        return {"x": d.isoformat()}, format_date(d, style, locale=locale)
    return lambda rng, n: _generate(make, rng, n)


def region(locale: str) -> str:
    return Locale.parse(locale).get_display_name("en")


# ---- computed tasks -----------------------------------------------------------------------

def computed(fn: Callable[[random.Random], Item]) -> Items:
    return lambda rng, n: _generate(fn, rng, n)


def _words() -> list[str]:
    """Single English words from CLDR country and language names (≥ 4 letters)."""
    names = list(_names("country", "en").values()) + list(_names("language", "en").values())
    return sorted({w.lower() for w in names if w.isalpha() and w.isascii() and len(w) >= 4})


def word_task(fn: Callable[[str], str]) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        return [({"x": w}, fn(w)) for w in rng.sample(_words(), n)]
    return items


def list_task(fn: Callable[[list[int]], object]) -> Items:
    def make(rng: random.Random) -> Item:
        xs = [rng.randrange(100) for _ in range(rng.randint(3, 6))]
        out = fn(xs)
        text = " ".join(map(str, out)) if isinstance(out, list) else str(out)
        return {"x": " ".join(map(str, xs))}, text
    return computed(make)


def is_prime(k: int) -> bool:
    return k > 1 and all(k % p for p in range(2, math.isqrt(k) + 1))


def roman(k: int) -> str:
    out = ""
    for value, sym in ((1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"),
                       (90, "XC"), (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"),
                       (4, "IV"), (1, "I")):
        while k >= value:
            out, k = out + sym, k - value
    return out


def int_task(lo: int, hi: int, fn: Callable[[int], tuple[str, str]]) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        return [({"x": fn(k)[0]}, fn(k)[1]) for k in rng.sample(range(lo, hi), n)]
    return items


def binary_op(fn: Callable[[int, int], int], a: tuple[int, int], b: tuple[int, int]) -> Items:
    def make(rng: random.Random) -> Item:
        x, y = rng.randrange(*a), rng.randrange(*b)
        return {"a": str(x), "b": str(y)}, str(fn(x, y))
    return computed(make)


def yes_no(test: Callable[[int], bool], lo: int, hi: int) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        # Half yes, half no, so a constant answer is not enough.
        yes = [k for k in range(lo, hi) if test(k)]
        no = [k for k in range(lo, hi) if not test(k)]
        picked = rng.sample(yes, n // 2) + rng.sample(no, n - n // 2)
        rng.shuffle(picked)
        return [({"x": str(k)}, "yes" if test(k) else "no") for k in picked]
    return items


def word_yes_no(test: Callable[[str], bool]) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        words = _words()
        yes, no = [w for w in words if test(w)], [w for w in words if not test(w)]
        picked = rng.sample(yes, min(n // 2, len(yes)))
        picked += rng.sample(no, n - len(picked))
        rng.shuffle(picked)
        return [({"x": w}, "yes" if test(w) else "no") for w in picked]
    return items


def language_id(kind: str) -> Items:
    langs = ["en", "fr", "de", "es", "it"]

    def items(rng: random.Random, n: int) -> list[Item]:
        label: dict[str, str | None] = {}
        for lang in langs:
            for text in _lang_texts(kind, lang):
                # A word two languages share (e.g. "Argentina") has no single answer: drop it.
                label[text] = LANG[lang] if text not in label else None
        pool = [({"x": t}, lab) for t, lab in sorted(label.items()) if lab is not None]
        return draw(pool, rng, n)
    return items


@cache
def _lang_texts(kind: str, lang: str) -> frozenset[str]:
    if kind == "month":
        return frozenset({format_date(dt.date(2001, m, d), p, locale=lang)
                          for m in range(1, 13) for d in (1, 2, 3, 4, 5, 6, 7)
                          for p in ("MMMM", "EEEE")})
    if kind == "number":
        return frozenset(num2words(k, lang=lang) for k in range(11, 100))
    return frozenset(_names("country", lang).values())


def country_fact(fact: str) -> Items:
    def items(rng: random.Random, n: int) -> list[Item]:
        en = _names("country", "en")
        langs = Locale.parse("en").languages
        pool = []
        for code, name in sorted(en.items()):
            if fact == "currency":
                cur = get_territory_currencies(code, dt.date(2020, 1, 1))
                ans = cur[0] if cur else None
            elif fact == "language":
                off = [lg for lg in get_official_languages(code) if lg in langs]
                ans = langs[off[0]] if off else None
            elif fact == "code":
                ans = code
            else:  # from code to name
                pool.append(({"x": code}, name))
                continue
            if ans:
                pool.append(({"x": name}, ans))
        return draw(pool, rng, n)
    return items
