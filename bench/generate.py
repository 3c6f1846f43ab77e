"""Deterministic synthetic customer data for the CDP: two CSV exports, Segment events, truth.

Usage::

    python bench/generate.py --customers 3000 --events 12000 --seed 42 --out DIR \\
        [--bad-rows 3]

Writes ``shopify_customers.csv``, ``crm_contacts.csv``, ``events.jsonl`` and ``truth.csv``
into DIR. The same arguments and the same Faker version give byte-identical files.

Faker is only used to build small pools (names, streets, companies) up front; every row
is assembled from those pools with ``random.Random`` streams, so the generator streams
with constant memory: 1M customers and 10M events run in a few minutes on two cores.

Three independent random streams keep the outputs decoupled: ``people`` (persons and both
CSV files, so they do not change with ``--events``), ``events`` (events.jsonl) and
``bad-rows`` (which Shopify rows get broken e-mails).
"""

from __future__ import annotations

import argparse
import bisect
import csv
import hashlib
import json
import sys
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from faker import Faker

REFERENCE_TIME = datetime(2026, 12, 1, tzinfo=UTC)
WINDOW_DAYS = 400

SHOPIFY_HEADER = [
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
]
CRM_HEADER = [
    "customer_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "street",
    "postcode",
    "city",
    "state",
    "country",
    "loyalty_tier",
]
TRUTH_HEADER = ["source", "external_key", "person_id"]

# Membership of a person in the two exports: 30% both, 40% Shopify only, 30% CRM only,
# i.e. 70% in Shopify, 60% in the CRM and 30% of all persons in both.
P_BOTH = 0.30
P_SHOPIFY_ONLY = 0.40

# Geography: real cities with consistent state, postcode range, area codes and time zone.
# (city, state code, state name, weight, postcode ranges, area codes, time zone)
US_CITIES = [
    ("New York", "NY", "New York", 30, [(10001, 10282)], ["212", "646", "917"], "E"),
    ("Brooklyn", "NY", "New York", 14, [(11201, 11256)], ["718", "347"], "E"),
    ("Boston", "MA", "Massachusetts", 10, [(2108, 2137)], ["617", "857"], "E"),
    ("Cambridge", "MA", "Massachusetts", 4, [(2138, 2142)], ["617"], "E"),
    ("Worcester", "MA", "Massachusetts", 3, [(1601, 1610)], ["508", "774"], "E"),
    ("Providence", "RI", "Rhode Island", 3, [(2903, 2912)], ["401"], "E"),
    ("Hartford", "CT", "Connecticut", 3, [(6101, 6120)], ["860"], "E"),
    ("New Haven", "CT", "Connecticut", 3, [(6510, 6519)], ["203", "475"], "E"),
    ("Newark", "NJ", "New Jersey", 4, [(7102, 7114)], ["973", "862"], "E"),
    ("Jersey City", "NJ", "New Jersey", 4, [(7302, 7311)], ["201", "551"], "E"),
    ("Portland", "ME", "Maine", 2, [(4101, 4112)], ["207"], "E"),
    ("Burlington", "VT", "Vermont", 1, [(5401, 5408)], ["802"], "E"),
    ("Philadelphia", "PA", "Pennsylvania", 10, [(19102, 19154)], ["215", "267"], "E"),
    ("Pittsburgh", "PA", "Pennsylvania", 5, [(15201, 15244)], ["412"], "E"),
    ("Washington", "DC", "District of Columbia", 8, [(20001, 20037)], ["202"], "E"),
    ("Baltimore", "MD", "Maryland", 5, [(21201, 21239)], ["410", "443"], "E"),
    ("Atlanta", "GA", "Georgia", 8, [(30303, 30350)], ["404", "678", "470"], "E"),
    ("Miami", "FL", "Florida", 8, [(33125, 33199)], ["305", "786"], "E"),
    ("Orlando", "FL", "Florida", 5, [(32801, 32839)], ["407"], "E"),
    ("Charlotte", "NC", "North Carolina", 5, [(28202, 28277)], ["704", "980"], "E"),
    ("Detroit", "MI", "Michigan", 5, [(48201, 48239)], ["313"], "E"),
    ("Chicago", "IL", "Illinois", 18, [(60601, 60661)], ["312", "773", "872"], "C"),
    ("Minneapolis", "MN", "Minnesota", 5, [(55401, 55488)], ["612"], "C"),
    ("Nashville", "TN", "Tennessee", 5, [(37201, 37221)], ["615", "629"], "C"),
    ("Houston", "TX", "Texas", 14, [(77002, 77099)], ["713", "832", "281"], "C"),
    ("Dallas", "TX", "Texas", 10, [(75201, 75254)], ["214", "469", "972"], "C"),
    ("Austin", "TX", "Texas", 7, [(78701, 78759)], ["512", "737"], "C"),
    ("Denver", "CO", "Colorado", 6, [(80202, 80239)], ["303", "720"], "M"),
    ("Phoenix", "AZ", "Arizona", 8, [(85003, 85054)], ["602", "480", "623"], "A"),
    ("Seattle", "WA", "Washington", 7, [(98101, 98199)], ["206"], "P"),
    ("Portland", "OR", "Oregon", 5, [(97201, 97239)], ["503", "971"], "P"),
    ("San Francisco", "CA", "California", 8, [(94102, 94134)], ["415", "628"], "P"),
    ("Los Angeles", "CA", "California", 20, [(90001, 90089)], ["213", "310", "323"], "P"),
    ("San Diego", "CA", "California", 8, [(92101, 92154)], ["619", "858"], "P"),
    ("San Jose", "CA", "California", 6, [(95110, 95139)], ["408", "669"], "P"),
]
DE_CITIES = [
    ("Berlin", "BE", "Berlin", 36, [(10115, 14199)], ["030"], "B"),
    ("Hamburg", "HH", "Hamburg", 18, [(20095, 22769)], ["040"], "B"),
    ("München", "BY", "Bayern", 15, [(80331, 81929)], ["089"], "B"),
    ("Köln", "NW", "Nordrhein-Westfalen", 11, [(50667, 51149)], ["0221"], "B"),
    ("Frankfurt am Main", "HE", "Hessen", 8, [(60306, 60599)], ["069"], "B"),
    ("Stuttgart", "BW", "Baden-Württemberg", 6, [(70173, 70629)], ["0711"], "B"),
    ("Düsseldorf", "NW", "Nordrhein-Westfalen", 6, [(40210, 40629)], ["0211"], "B"),
    ("Leipzig", "SN", "Sachsen", 6, [(4103, 4357)], ["0341"], "B"),
    ("Dresden", "SN", "Sachsen", 6, [(1067, 1328)], ["0351"], "B"),
    ("Chemnitz", "SN", "Sachsen", 2, [(9111, 9247)], ["0371"], "B"),
    ("Görlitz", "SN", "Sachsen", 1, [(2826, 2828)], ["03581"], "B"),
    ("Cottbus", "BB", "Brandenburg", 1, [(3042, 3055)], ["0355"], "B"),
    ("Potsdam", "BB", "Brandenburg", 2, [(14467, 14482)], ["0331"], "B"),
    ("Halle (Saale)", "ST", "Sachsen-Anhalt", 2, [(6108, 6132)], ["0345"], "B"),
    ("Magdeburg", "ST", "Sachsen-Anhalt", 2, [(39104, 39130)], ["0391"], "B"),
    ("Erfurt", "TH", "Thüringen", 2, [(99084, 99099)], ["0361"], "B"),
    ("Jena", "TH", "Thüringen", 1, [(7743, 7751)], ["03641"], "B"),
    ("Rostock", "MV", "Mecklenburg-Vorpommern", 2, [(18055, 18147)], ["0381"], "B"),
    ("Hannover", "NI", "Niedersachsen", 5, [(30159, 30669)], ["0511"], "B"),
    ("Bremen", "HB", "Bremen", 5, [(28195, 28779)], ["0421"], "B"),
    ("Dortmund", "NW", "Nordrhein-Westfalen", 5, [(44135, 44388)], ["0231"], "B"),
    ("Essen", "NW", "Nordrhein-Westfalen", 5, [(45127, 45359)], ["0201"], "B"),
    ("Nürnberg", "BY", "Bayern", 5, [(90402, 90491)], ["0911"], "B"),
    ("Augsburg", "BY", "Bayern", 3, [(86150, 86199)], ["0821"], "B"),
    ("Mainz", "RP", "Rheinland-Pfalz", 2, [(55116, 55131)], ["06131"], "B"),
    ("Saarbrücken", "SL", "Saarland", 2, [(66111, 66133)], ["0681"], "B"),
    ("Kiel", "SH", "Schleswig-Holstein", 2, [(24103, 24159)], ["0431"], "B"),
    ("Freiburg im Breisgau", "BW", "Baden-Württemberg", 2, [(79098, 79117)], ["0761"], "B"),
    ("Bonn", "NW", "Nordrhein-Westfalen", 3, [(53111, 53229)], ["0228"], "B"),
    ("Münster", "NW", "Nordrhein-Westfalen", 3, [(48143, 48167)], ["0251"], "B"),
    ("Wiesbaden", "HE", "Hessen", 3, [(65183, 65207)], ["0611"], "B"),
]
TIME_ZONES = {
    "E": "America/New_York",
    "C": "America/Chicago",
    "M": "America/Denver",
    "A": "America/Phoenix",
    "P": "America/Los_Angeles",
    "B": "Europe/Berlin",
}
# German mobile prefixes with the subscriber length libphonenumber accepts.
DE_MOBILE = [
    ("0151", 8),
    ("0152", 8),
    ("0157", 8),
    ("0160", 7),
    ("0162", 7),
    ("0170", 7),
    ("0171", 7),
    ("0172", 7),
    ("0176", 8),
    ("0177", 7),
    ("0178", 7),
    ("0179", 7),
]

EMAIL_DOMAINS = {
    "US": [
        ("gmail.com", 38),
        ("yahoo.com", 12),
        ("hotmail.com", 7),
        ("outlook.com", 9),
        ("icloud.com", 9),
        ("aol.com", 3),
        ("comcast.net", 3),
        ("example.com", 5),
        ("googlemail.com", 1),
    ],
    "DE": [
        ("gmail.com", 18),
        ("googlemail.com", 8),
        ("web.de", 22),
        ("gmx.de", 17),
        ("gmx.net", 5),
        ("t-online.de", 10),
        ("outlook.de", 4),
        ("yahoo.de", 3),
        ("example.com", 5),
    ],
}

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
]
# First octets of public IPv4 ranges, so no address looks private or reserved.
IP_FIRST_OCTETS = {
    "US": [24, 50, 67, 68, 71, 73, 76, 96, 98, 104, 107, 108, 173, 174],
    "DE": [2, 31, 37, 46, 77, 79, 80, 84, 87, 91, 93, 95, 178, 217],
}

SHOPIFY_TAGS = [
    "vip",
    "newsletter",
    "wholesale",
    "repeat-buyer",
    "black-friday-2025",
    "b2b",
    "influencer",
    "returning",
    "gift-card",
    "sale-hunter",
]
SHOPIFY_NOTES = {
    "US": [
        "Prefers UPS delivery",
        "Leave package at the side door",
        "Gift wrap, please",
        "Asked about wholesale pricing",
        "Call before delivery, gate code 4411",
    ],
    "DE": [
        "Bitte beim Nachbarn abgeben",
        "Lieferung nur an Werktagen",
        "Rechnung per Post",
        "Kundin wünscht keine Werbung per Telefon",
        "Paket an Packstation 112",
    ],
}
ADDRESS2 = {
    "US": ["Apt 2B", "Apt 4", "Apt 12C", "Suite 100", "Unit 7", "Floor 3", "#305"],
    "DE": ["2. OG", "Hinterhaus", "c/o Müller", "Aufgang B", "3. OG links"],
}
LOYALTY_TIERS = [("", 40), ("bronze", 30), ("silver", 18), ("gold", 9), ("platinum", 3)]

CATEGORIES = {
    "Shoes": (["Sneaker", "Runner", "Boot", "Loafer", "Sandal"], 39, 189),
    "Apparel": (["T-Shirt", "Hoodie", "Jacket", "Chinos", "Sweater", "Dress"], 19, 179),
    "Accessories": (["Backpack", "Belt", "Cap", "Wallet", "Scarf", "Sunglasses"], 9, 129),
    "Home": (["Mug", "Throw Blanket", "Candle", "Cushion", "Vase"], 9, 99),
    "Beauty": (["Face Cream", "Shampoo", "Lip Balm", "Perfume", "Serum"], 6, 89),
    "Outdoor": (["Tent", "Water Bottle", "Rain Jacket", "Sleeping Bag"], 15, 349),
}
ADJECTIVES = [
    "Classic",
    "Everyday",
    "Urban",
    "Organic",
    "Essential",
    "Vintage",
    "Alpine",
    "Coastal",
    "Nordic",
    "Premium",
    "Lightweight",
    "Recycled",
]
PAGES = [
    ("Home", "/"),
    ("Cart", "/cart"),
    ("Sale", "/collections/sale"),
    ("New Arrivals", "/collections/new"),
    ("Search", "/search"),
    ("Account", "/account"),
    ("Help", "/pages/help"),
]
SHOP_URL = "https://shop.example.com"

TRANSLIT = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}
)


def slugify_name(name: str) -> str:
    """Lower-case ASCII form of a name for e-mail local parts ("Jürgen" -> "juergen")."""
    ascii_name = unicodedata.normalize("NFKD", name.translate(TRANSLIT))
    ascii_name = ascii_name.encode("ascii", "ignore").decode().lower()
    return "".join(c for c in ascii_name if c.isalnum() or c == "-")


class WeightedChoice:
    """Constant-time-ish weighted choice over a fixed list (bisect over cumulative weights)."""

    def __init__(self, items: list, weights: list[float]) -> None:
        self.items = items
        self.cum: list[float] = []
        total = 0.0
        for w in weights:
            total += w
            self.cum.append(total)
        self.total = total

    def pick(self, rng: Random) -> Any:
        return self.items[bisect.bisect_right(self.cum, rng.random() * self.total)]


@dataclass(frozen=True)
class CountryPools:
    """Faker-built pools for one country; draws keep Faker's name frequencies."""

    first_names: list[tuple[str, str]]  # (display, slug)
    last_names: list[tuple[str, str]]
    streets: list[str]
    companies: list[str]
    cities: WeightedChoice
    domains: WeightedChoice


def build_pools(seed: int, size: int = 4000) -> dict[str, CountryPools]:
    """Call Faker a few thousand times per locale; nothing calls Faker after this."""
    pools = {}
    for country, locale, cities in (("US", "en_US", US_CITIES), ("DE", "de_DE", DE_CITIES)):
        fake = Faker(locale)
        fake.seed_instance(seed)
        firsts = [fake.first_name() for _ in range(size)]
        lasts = [fake.last_name() for _ in range(size)]
        pools[country] = CountryPools(
            first_names=[(n, slugify_name(n)) for n in firsts],
            last_names=[(n, slugify_name(n)) for n in lasts],
            streets=[fake.street_name() for _ in range(size)],
            companies=[fake.company() for _ in range(500)],
            cities=WeightedChoice(cities, [c[3] for c in cities]),
            domains=WeightedChoice(
                [d for d, _ in EMAIL_DOMAINS[country]],
                [w for _, w in EMAIL_DOMAINS[country]],
            ),
        )
    return pools


class EmailBloom:
    """Fixed-size (16 MiB) Bloom filter: keeps e-mails unique without storing them.

    A false positive only makes a person get a numbered e-mail, so output stays correct;
    blake2b (not ``hash()``) keeps the result independent of PYTHONHASHSEED.
    """

    BITS = 1 << 27

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    def add_if_new(self, value: str) -> bool:
        digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
        h1 = int.from_bytes(digest[:4], "little") % self.BITS
        h2 = int.from_bytes(digest[4:], "little") % self.BITS
        bits = self.bits
        if bits[h1 >> 3] & (1 << (h1 & 7)) and bits[h2 >> 3] & (1 << (h2 & 7)):
            return False
        bits[h1 >> 3] |= 1 << (h1 & 7)
        bits[h2 >> 3] |= 1 << (h2 & 7)
        return True


@dataclass(slots=True)
class Person:
    """One synthetic human; the ground truth behind rows in every file."""

    person_id: str
    user_id: str
    country: str
    first_name: str
    last_name: str
    email: str
    phone_national: str
    phone_e164: str
    birth_date: str
    street: str
    postcode: str
    city: str
    state_code: str
    state_name: str
    tz: str
    in_shopify: bool
    in_crm: bool
    customer_id: str = ""


BIRTH_FIRST = date(1942, 1, 1).toordinal()
BIRTH_LAST = date(2007, 12, 31).toordinal()


def make_email(
    rng: Random, first: str, last: str, birth_year: int, domain: str, bloom: EmailBloom
) -> str:
    """An address derived from the name, a number and a domain; unique via the Bloom filter."""
    first = first or "kunde"
    last = last or "kunde"
    r = rng.random()
    if r < 0.25:
        local = f"{first}.{last}"
    elif r < 0.35:
        local = f"{first}{last}"
    elif r < 0.45:
        local = f"{first[0]}.{last}"
    elif r < 0.50:
        local = f"{first}_{last}"
    elif r < 0.70:
        local = f"{first}.{last}{birth_year % 100:02d}"
    elif r < 0.80:
        local = f"{first}{last[0]}{rng.randint(1, 999)}"
    elif r < 0.85:
        local = f"{last}.{first}"
    else:
        local = f"{first}{rng.randint(1, 9999)}"
    email = f"{local}@{domain}"
    while not bloom.add_if_new(email):
        email = f"{local}{rng.randint(2, 99999)}@{domain}"
    return email


def make_phone(rng: Random, country: str, area_codes: list[str]) -> tuple[str, str]:
    """(national, E.164) phone number that libphonenumber accepts as valid."""
    if country == "US":
        area = area_codes[int(rng.random() * len(area_codes))]
        exchange = rng.randint(200, 999)
        if exchange % 100 == 11 or exchange == 555:
            exchange += 1
        line = rng.randint(0, 9999)
        return f"({area}) {exchange}-{line:04d}", f"+1{area}{exchange}{line:04d}"
    if rng.random() < 0.35:
        prefix, length = DE_MOBILE[int(rng.random() * len(DE_MOBILE))]
    else:
        prefix = area_codes[0]
        # Area code and subscriber number together have 10 or 11 digits.
        length = 11 - len(prefix) + rng.randint(0, 1)
    subscriber = str(rng.randint(2, 9)) + "".join(
        str(int(rng.random() * 10)) for _ in range(length - 1)
    )
    return f"{prefix} {subscriber}", f"+49{prefix[1:]}{subscriber}"


def make_person(
    index: int, rng: Random, pools: dict[str, CountryPools], bloom: EmailBloom
) -> Person:
    """Build person number ``index`` (0-based) from the ``people`` stream."""
    country = "US" if rng.random() < 0.55 else "DE"
    pool = pools[country]
    first, first_slug = pool.first_names[int(rng.random() * len(pool.first_names))]
    last, last_slug = pool.last_names[int(rng.random() * len(pool.last_names))]
    birth = date.fromordinal(rng.randint(BIRTH_FIRST, BIRTH_LAST))
    email = make_email(rng, first_slug, last_slug, birth.year, pool.domains.pick(rng), bloom)
    city, state_code, state_name, _, ranges, area_codes, tz = pool.cities.pick(rng)
    low, high = ranges[int(rng.random() * len(ranges))]
    postcode = f"{rng.randint(low, high):05d}"
    phone_national, phone_e164 = make_phone(rng, country, area_codes)
    street_name = pool.streets[int(rng.random() * len(pool.streets))]
    number = rng.randint(1, 180) if rng.random() < 0.9 else rng.randint(181, 2400)
    if country == "US":
        street = f"{number} {street_name}"
    else:
        suffix = "abc"[int(rng.random() * 3)] if rng.random() < 0.08 else ""
        street = f"{street_name} {number % 200 or 1}{suffix}"
    r = rng.random()
    return Person(
        person_id=f"P{index + 1:06d}",
        user_id=f"U{index + 1:06d}",
        country=country,
        first_name=first,
        last_name=last,
        email=email,
        phone_national=phone_national,
        phone_e164=phone_e164,
        birth_date=birth.isoformat(),
        street=street,
        postcode=postcode,
        city=city,
        state_code=state_code,
        state_name=state_name,
        tz=tz,
        in_shopify=r < P_BOTH + P_SHOPIFY_ONLY,
        in_crm=r < P_BOTH or r >= P_BOTH + P_SHOPIFY_ONLY,
    )


def broken_email(kind: str, person: Person) -> str:
    """The deliberately bad e-mail of a ``--bad-rows`` row."""
    local, _, domain = person.email.partition("@")
    if kind == "double_at":
        return f"{local}@@{domain.rsplit('.', 1)[0]}"  # anna.schmidt@@example
    if kind == "no_at":
        return f"{local}.{domain}"  # anna.schmidt.example.com
    return "test@test.com"  # placeholder, shared by two different persons


# Kinds in the order the bad rows appear; a placeholder always comes as a pair.
BAD_ROW_KINDS = ["double_at", "placeholder", "placeholder", "no_at"]


def shopify_row(person: Person, rng: Random, email: str, companies: list[str]) -> list[str]:
    """One row of Shopify's customers export for ``person``."""
    first, last = person.first_name, person.last_name
    r = rng.random()
    if r < 0.02:
        first = last = ""  # guest checkout without a name
    elif r < 0.04:
        first, last = first.lower(), last.lower()
    street = person.street
    if person.country == "DE" and rng.random() < 0.3:
        street = street.replace("straße", "str.").replace("Straße", "Str.")
    zip_code = f"'{person.postcode}" if rng.random() < 0.5 else person.postcode
    has_phone = rng.random() < 0.6
    address_phone = ""
    if rng.random() < 0.3:
        address_phone = person.phone_national if rng.random() < 0.6 else person.phone_e164
    orders = 0 if rng.random() < 0.25 else min(60, int(rng.expovariate(1 / 4)) + 1)
    spent = orders * rng.uniform(18.0, 140.0)
    tags = ""
    if rng.random() < 0.45:
        tags = ", ".join(rng.sample(SHOPIFY_TAGS, rng.randint(1, 3)))
    note = ""
    if rng.random() < 0.05:
        notes = SHOPIFY_NOTES[person.country]
        note = notes[int(rng.random() * len(notes))]
    pool_a2 = ADDRESS2[person.country]
    return [
        first,
        last,
        email,
        "yes" if rng.random() < 0.45 else "no",
        companies[int(rng.random() * len(companies))] if rng.random() < 0.08 else "",
        street,
        pool_a2[int(rng.random() * len(pool_a2))] if rng.random() < 0.12 else "",
        person.city,
        person.state_code if person.country == "US" else "",
        person.country,
        zip_code,
        address_phone,
        person.phone_e164 if has_phone else "",
        "yes" if has_phone and rng.random() < 0.35 else "no",
        f"{spent:.2f}",
        str(orders),
        note,
        "yes" if rng.random() < 0.02 else "no",
        tags,
    ]


def vary_email(email: str, rng: Random) -> str:
    """How the same address drifts between systems: case, stray spaces, googlemail."""
    r = rng.random()
    if r < 0.03 and email.endswith("@gmail.com"):
        return email.replace("@gmail.com", "@googlemail.com")
    if r < 0.03 and email.endswith("@googlemail.com"):
        return email.replace("@googlemail.com", "@gmail.com")
    if r >= 0.20:
        return email
    local, _, domain = email.partition("@")
    kind = rng.random()
    if kind < 0.3:
        return f"{'.'.join(p.capitalize() for p in local.split('.'))}@{domain}"
    if kind < 0.45:
        return email.upper()
    if kind < 0.65:
        return f" {email}"
    if kind < 0.85:
        return f"{email}\u00a0"
    return f" {local.capitalize()}@{domain.capitalize()}\u00a0"


def crm_row(person: Person, rng: Random, email: str) -> list[str]:
    """One row of the CRM export, with canonical attribute names as headers."""
    last = person.last_name.upper() if rng.random() < 0.03 else person.last_name
    tiers = LOYALTY_TIERS
    tier_roll = rng.random() * 100
    tier = ""
    for name, weight in tiers:
        tier_roll -= weight
        if tier_roll < 0:
            tier = name
            break
    return [
        person.customer_id,
        person.first_name,
        last,
        email,
        person.phone_national if rng.random() < 0.85 else "",
        person.birth_date if rng.random() < 0.8 else "",
        person.street,
        person.postcode,
        person.city,
        person.state_code if person.country == "US" else person.state_name,
        person.country,
        tier,
    ]


class CustomerIds:
    """Unique, non-sequential CRM ids (C0001234) via an affine bijection mod a prime."""

    PRIME = 9_999_991

    def __init__(self, rng: Random) -> None:
        self.a = rng.randint(1_000_003, self.PRIME - 1)
        self.b = rng.randint(0, self.PRIME - 1)
        self.next_index = 0

    def next(self) -> str:
        if self.next_index >= self.PRIME:
            raise ValueError("more than 9,999,991 CRM contacts are not supported")
        value = (self.a * self.next_index + self.b) % self.PRIME + 1
        self.next_index += 1
        return f"C{value:07d}"


# ---------------------------------------------------------------------------- events


class Clock:
    """Formats epoch milliseconds as local ISO-8601 with offset, from precomputed tables.

    zoneinfo is consulted once per hour of the window at start-up; per event it is an
    index lookup and an f-string, which matters at 10M events.
    """

    def __init__(self) -> None:
        start = REFERENCE_TIME - timedelta(days=WINDOW_DAYS + 2)
        self.start_ms = int(start.timestamp()) * 1000
        hours = (WINDOW_DAYS + 4) * 24
        self.offsets: dict[str, list[int]] = {}
        for key, name in TIME_ZONES.items():
            zone = ZoneInfo(name)
            self.offsets[key] = [
                int((start + timedelta(hours=h)).astimezone(zone).utcoffset().total_seconds())
                for h in range(hours)
            ]
        self.offsets["Z"] = [0] * hours
        day0 = datetime.combine(start.date() - timedelta(days=1), datetime.min.time(), UTC)
        self.day0_ms = int(day0.timestamp()) * 1000
        self.days = [(day0 + timedelta(days=d)).date().isoformat() for d in range(hours // 24 + 4)]
        self.suffix: dict[int, str] = {}
        for table in self.offsets.values():
            for off in set(table):
                sign = "+" if off >= 0 else "-"
                self.suffix[off] = f"{sign}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"

    def format(self, ms: int, tz: str) -> str:
        off = self.offsets[tz][(ms - self.start_ms) // 3_600_000]
        day, rem = divmod(ms + off * 1000 - self.day0_ms, 86_400_000)
        seconds, millis = divmod(rem, 1000)
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        return (
            f"{self.days[day]}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
            f"{self.suffix[off]}"
        )


@dataclass(frozen=True)
class Product:
    """A catalogue item; prices per currency."""

    product_id: str
    sku: str
    name: str
    category: str
    price: dict[str, float]
    path: str


def build_catalog(rng: Random, size: int = 240) -> list[Product]:
    """A small shop catalogue, the same for every person (and every run with this seed)."""
    products = []
    categories = list(CATEGORIES)
    for i in range(size):
        category = categories[i % len(categories)]
        nouns, low, high = CATEGORIES[category]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(nouns)}"
        usd = rng.randint(low, high) + rng.choice((0.0, 0.5, 0.99, 0.95))
        eur = round(usd * 0.95) + rng.choice((0.0, 0.9, 0.99, 0.95))
        slug = f"{name.lower().replace(' ', '-')}-{i + 1}"
        colour = rng.choice(("BLK", "WHT", "NVY", "GRN", "RED"))
        products.append(
            Product(
                product_id=f"prod_{i + 1:04d}",
                sku=f"{category[:3].upper()}-{i + 1:04d}-{colour}",
                name=name,
                category=category,
                price={"USD": round(usd, 2), "EUR": round(eur, 2)},
                path=f"/products/{slug}",
            )
        )
    return products


class EventWriter:
    """Writes Segment messages (identify, page, track) for persons and anonymous visitors."""

    def __init__(self, out: TextIO, rng: Random, catalog: list[Product]) -> None:
        self.out = out
        self.rng = rng
        self.catalog = catalog
        self.clock = Clock()
        self.window_start_ms = int(
            (REFERENCE_TIME - timedelta(days=WINDOW_DAYS)).timestamp() * 1000
        )
        self.window_ms = WINDOW_DAYS * 86_400_000
        self.orders = 0
        self.written = 0
        self.dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def context(self, country: str) -> dict:
        r = self.rng.random
        octets = IP_FIRST_OCTETS[country]
        ip = (
            f"{octets[int(r() * len(octets))]}.{int(r() * 256)}.{int(r() * 256)}."
            f"{1 + int(r() * 254)}"
        )
        return {"ip": ip, "userAgent": USER_AGENTS[int(r() * len(USER_AGENTS))]}

    def timeline(self, count: int) -> list[int]:
        """``count`` ascending timestamps grouped into sessions of a few minutes."""
        rng = self.rng
        session_starts = count // 3 + 1
        starts = sorted(
            self.window_start_ms + int(rng.random() * (self.window_ms - 7_200_000))
            for _ in range(session_starts)
        )
        last_ms = self.window_start_ms + self.window_ms - 1
        times = []
        current = starts[0]
        session = 0
        for i in range(count):
            if i and session + 1 < session_starts and rng.random() < 0.35:
                session += 1
                current = max(starts[session], current + 1000)
            elif i:
                current += 2_000 + int(rng.random() * 148_000)
            times.append(min(current, last_ms))
        return times

    def page(self, ids: dict, context: dict, product: bool) -> dict:
        if product:
            item = self.catalog[int(self.rng.random() * len(self.catalog))]
            name, path = "Product", item.path
        else:
            name, path = PAGES[int(self.rng.random() * len(PAGES))]
        return {
            "type": "page",
            **self.base(**ids),
            "name": name,
            "properties": {"path": path, "url": SHOP_URL + path},
            "context": context,
        }

    def product_viewed(self, ids: dict, currency: str, context: dict) -> dict:
        item = self.catalog[int(self.rng.random() * len(self.catalog))]
        return {
            "type": "track",
            **self.base(**ids),
            "event": "Product Viewed",
            "properties": {
                "product_id": item.product_id,
                "name": item.name,
                "price": item.price[currency],
                "category": item.category,
            },
            "context": context,
        }

    def order_completed(self, ids: dict, currency: str, context: dict) -> dict:
        rng = self.rng
        self.orders += 1
        lines = []
        subtotal = 0.0
        for _ in range(1 if rng.random() < 0.55 else rng.randint(2, 4)):
            item = self.catalog[int(rng.random() * len(self.catalog))]
            quantity = 1 if rng.random() < 0.8 else rng.randint(2, 3)
            price = item.price[currency]
            subtotal += price * quantity
            lines.append(
                {
                    "product_id": item.product_id,
                    "sku": item.sku,
                    "name": item.name,
                    "price": price,
                    "quantity": quantity,
                }
            )
        revenue = round(subtotal, 2)
        shipping = 0.0 if subtotal >= 50 else 4.95
        # EUR prices include VAT; US sales tax comes on top.
        tax = round(subtotal * 0.08, 2) if currency == "USD" else 0.0
        total = round(revenue + shipping + tax, 2)
        return {
            "type": "track",
            **self.base(**ids),
            "event": "Order Completed",
            "properties": {
                "order_id": f"ORD-{self.orders:08d}",
                "total": total,
                "revenue": revenue,
                "currency": currency,
                "products": lines,
            },
            "context": context,
        }

    def write(self, messages: list[tuple[int, str, dict]]) -> None:
        """Serialise ``(epoch ms, tz, message)`` in time order; retries reuse the line."""
        messages.sort(key=lambda m: m[0])
        fmt = self.clock.format
        dumps = self.dumps
        write = self.out.write
        previous: dict | None = None
        line = ""
        for ms, tz, message in messages:
            if message is not previous:
                message["timestamp"] = fmt(ms, tz)
                line = dumps(message) + "\n"
                previous = message
            write(line)
        self.written += len(messages)

    def base(self, **ids: str) -> dict:
        """Leading keys in Segment's usual order; ``timestamp`` is filled in by write()."""
        return {"messageId": self.uuid(), "timestamp": "", **ids}

    def person(self, person: Person, count: int) -> None:
        """``count`` messages for a CRM person: identify first, then browsing and orders."""
        rng = self.rng
        currency = "USD" if person.country == "US" else "EUR"
        context = self.context(person.country)
        times = self.timeline(count)
        plan: list[tuple[int, str, dict]] = []
        user = {"userId": person.customer_id}
        anonymous_id = ""
        n_anonymous = 0
        if count >= 2 and rng.random() < 0.25:
            anonymous_id = self.uuid()
            n_anonymous = min(rng.randint(1, 3), count - 1)
            for i in range(n_anonymous):
                message = self.page({"anonymousId": anonymous_id}, context, rng.random() < 0.5)
                plan.append((times[i], person.tz, message))
            user = {"anonymousId": anonymous_id, "userId": person.customer_id}
        identify = {
            "type": "identify",
            **self.base(**user),
            "traits": {
                "email": person.email,
                "firstName": person.first_name,
                "lastName": person.last_name,
            },
            "context": context,
        }
        plan.append((times[n_anonymous], person.tz, identify))
        i = n_anonymous + 1
        while i < count:
            r = rng.random()
            if r < 0.011:
                plan.append(plan[-1])  # exact retry: same messageId, same line
            elif r < 0.36:
                page = self.page(user, context, rng.random() < 0.4)
                plan.append((times[i], person.tz, page))
            elif r < 0.80:
                plan.append((times[i], person.tz, self.product_viewed(user, currency, context)))
            else:
                order = self.order_completed(user, currency, context)
                plan.append((times[i], "Z", order))
                if i + 1 < count and rng.random() < 0.032:
                    i += 1
                    refund_ms = times[i - 1] + rng.randint(1, 21) * 86_400_000
                    refund_ms = min(
                        refund_ms + rng.randint(0, 86_399_999),
                        self.window_start_ms + self.window_ms - 1,
                    )
                    refund = {
                        "type": "track",
                        **self.base(**user),
                        "event": "Order Refunded",
                        "properties": {
                            "order_id": order["properties"]["order_id"],
                            "total": order["properties"]["total"],
                            "currency": currency,
                        },
                        "context": context,
                    }
                    plan.append((refund_ms, "Z", refund))
            i += 1
        self.write(plan)

    def anonymous(self, country: str, tz: str, count: int) -> None:
        """A visitor who never identifies: page views and product views only."""
        rng = self.rng
        ids = {"anonymousId": self.uuid()}
        context = self.context(country)
        currency = "USD" if country == "US" else "EUR"
        plan: list[tuple[int, str, dict]] = []
        for ms in self.timeline(count):
            if plan and rng.random() < 0.011:
                plan.append(plan[-1])
            elif rng.random() < 0.6:
                plan.append((ms, tz, self.page(ids, context, rng.random() < 0.4)))
            else:
                plan.append((ms, tz, self.product_viewed(ids, currency, context)))
        self.write(plan)


def generate(*, customers: int, events: int, seed: int, out: Path, bad_rows: int = 0) -> dict:
    """Write the four files into ``out``; return row counts."""
    if bad_rows > customers:
        raise ValueError("--bad-rows cannot exceed --customers")
    out.mkdir(parents=True, exist_ok=True)
    pools = build_pools(seed)
    people_rng = Random(f"{seed}:people")
    event_rng = Random(f"{seed}:events")
    bad_rng = Random(f"{seed}:bad-rows")
    bad_positions = sorted(bad_rng.sample(range(customers), bad_rows))
    bad_kinds = {pos: BAD_ROW_KINDS[i % len(BAD_ROW_KINDS)] for i, pos in enumerate(bad_positions)}
    bloom = EmailBloom()
    customer_ids = CustomerIds(Random(f"{seed}:customer-ids"))
    catalog = build_catalog(Random(f"{seed}:catalog"))
    counts = {"persons": customers, "shopify": 0, "crm": 0, "both": 0, "bad_rows": 0}

    buffer = 1 << 20
    with (
        (out / "shopify_customers.csv").open(
            "w", newline="", encoding="utf-8", buffering=buffer
        ) as shopify_file,
        (out / "crm_contacts.csv").open(
            "w", newline="", encoding="utf-8", buffering=buffer
        ) as crm_file,
        (out / "truth.csv").open("w", newline="", encoding="utf-8", buffering=buffer) as truth_file,
        (out / "events.jsonl").open(
            "w", newline="\n", encoding="utf-8", buffering=buffer
        ) as events_file,
    ):
        shopify = csv.writer(shopify_file, lineterminator="\n")
        crm = csv.writer(crm_file, lineterminator="\n")
        truth = csv.writer(truth_file, lineterminator="\n")
        shopify.writerow(SHOPIFY_HEADER)
        crm.writerow(CRM_HEADER)
        truth.writerow(TRUTH_HEADER)
        writer = EventWriter(events_file, event_rng, catalog)

        for index in range(customers):
            person = make_person(index, people_rng, pools, bloom)
            bad_kind = bad_kinds.get(index)
            if bad_kind:
                person.in_shopify = True
            # Both variants are always drawn, so forcing a bad row into Shopify never
            # shifts the random stream: --bad-rows changes those rows and nothing else.
            email = broken_email(bad_kind, person) if bad_kind else person.email
            row = shopify_row(person, people_rng, email, pools[person.country].companies)
            varied_email = vary_email(person.email, people_rng)
            if person.in_shopify:
                shopify.writerow(row)
                truth.writerow(("shopify", email, person.person_id))
                counts["shopify"] += 1
                counts["bad_rows"] += bool(bad_kind)
            if person.in_crm:
                person.customer_id = customer_ids.next()
                crm_email = varied_email if person.in_shopify else person.email
                crm.writerow(crm_row(person, people_rng, crm_email))
                truth.writerow(("crm", person.customer_id, person.person_id))
                counts["crm"] += 1
                counts["both"] += person.in_shopify

            # Events: keep the running total on the line from 0 to ``events`` so the
            # file ends with exactly that many messages whatever the membership draws.
            pending = events * (index + 1) // customers - writer.written
            budget = events - writer.written
            if person.in_crm and budget > 0:
                count = int(max(pending, 1) * event_rng.uniform(0.5, 1.5) + 0.5)
                writer.person(person, max(1, min(count, budget)))
            elif pending > 0 and event_rng.random() < 0.3:
                count = min(pending, event_rng.randint(1, 4))
                writer.anonymous(person.country, person.tz, count)

        while writer.written < events:
            country = "US" if event_rng.random() < 0.55 else "DE"
            tz = "E" if country == "US" else "B"
            writer.anonymous(country, tz, min(events - writer.written, event_rng.randint(1, 5)))

    counts["events"] = writer.written
    counts["orders"] = writer.orders
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, required=True, help="number of persons")
    parser.add_argument("--events", type=int, required=True, help="number of event lines")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--bad-rows", type=int, default=0, help="broken e-mails to put into shopify_customers.csv"
    )
    args = parser.parse_args(argv)
    if args.customers < 1 or args.events < 0 or args.bad_rows < 0:
        parser.error("--customers must be >= 1, --events and --bad-rows >= 0")

    started = time.perf_counter()
    counts = generate(
        customers=args.customers,
        events=args.events,
        seed=args.seed,
        out=args.out,
        bad_rows=args.bad_rows,
    )
    elapsed = time.perf_counter() - started
    print(f"{'file':<24}{'rows':>12}{'bytes':>15}")
    for name, rows in (
        ("shopify_customers.csv", counts["shopify"]),
        ("crm_contacts.csv", counts["crm"]),
        ("events.jsonl", counts["events"]),
        ("truth.csv", counts["shopify"] + counts["crm"]),
    ):
        print(f"{name:<24}{rows:>12,}{(args.out / name).stat().st_size:>15,}")
    print(
        f"persons {counts['persons']:,}  in both exports {counts['both']:,}  "
        f"bad rows {counts['bad_rows']}  orders {counts['orders']:,}  "
        f"time {elapsed:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
