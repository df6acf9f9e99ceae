"""Synthetic but structured data for bench/scale.py: a varied multi-domain catalog and users'
event histories (taste clusters, Zipf popularity, drifting sessions, increasing timestamps)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Per domain: its categories, each with theme phrases that make its texts (and so their
# embeddings) cluster the way real genres do; shared word lists give every text its own title,
# names and details.
DOMAINS: dict[str, dict[str, Sequence[str]]] = {
    "film": {
        "Action": ("a rogue agent on a revenge mission", "car chases through a collapsing city",
                   "a heist that goes wrong", "a bodyguard protecting a witness",
                   "mercenaries storming a fortress", "a cop with nothing left to lose"),
        "Comedy": ("a wedding that spirals out of control", "two roommates who cannot agree",
                   "a clumsy family road trip", "an office prank war",
                   "a struggling stand-up comedian", "neighbours feuding over a fence"),
        "Drama": ("a family torn apart by grief", "a teacher who changes a small town",
                  "a marriage slowly falling apart", "a father and son reconciling",
                  "a nurse during a long winter", "an immigrant building a new life"),
        "Horror": ("a haunted house in the woods", "a demon that feeds on fear",
                   "a cursed videotape", "campers hunted by a masked killer",
                   "a possessed child", "something living under the ice"),
        "Sci-Fi": ("a starship crew lost in deep space", "a rogue artificial intelligence",
                   "colonists on a dying planet", "time travellers changing history",
                   "first contact with an alien species", "a dystopian megacity of clones"),
        "Romance": ("two strangers falling in love in Paris", "a summer love affair",
                    "childhood sweethearts reunited", "a forbidden romance",
                    "a love letter found decades later", "a wedding planner who falls for a guest"),
        "Thriller": ("a journalist uncovering a conspiracy", "a missing wife and a lying husband",
                     "a hacker framed for murder", "a kidnapping with a ticking clock",
                     "a spy hunting a double agent", "a jury member being blackmailed"),
        "Animation": ("a talking fox on a quest", "toys that come alive at night",
                      "a young dragon learning to fly", "a robot searching for a friend",
                      "a mermaid princess", "animals escaping from a zoo"),
        "Documentary": ("the history of jazz", "the collapse of coral reefs",
                        "life inside a maximum security prison", "the rise of a tech giant",
                        "endangered elephants in Africa", "the race to the moon"),
        "Western": ("a lone gunslinger riding into town", "cattle rustlers on the frontier",
                    "a sheriff facing a gang of outlaws", "a wagon train crossing the desert",
                    "a bounty hunter and a gold rush", "a showdown at high noon"),
        "War": ("soldiers trapped behind enemy lines", "a submarine under attack",
                "pilots in the battle of Britain", "a field hospital at the front",
                "resistance fighters in occupied France", "a platoon in the jungle"),
        "Fantasy": ("a wizard's apprentice", "an elven kingdom at war",
                    "a quest for a cursed sword",
                    "a dragon guarding a mountain of gold", "a portal to a magical realm",
                    "a witch hunted by the king"),
        "Mystery": ("a detective solving a locked-room murder", "a stolen diamond on a train",
                    "a village full of secrets", "an amateur sleuth and a poisoned heiress",
                    "a body found in the lake", "clues hidden in an old painting"),
    },
    "music": {
        "Rock": ("distorted guitars and pounding drums", "stadium anthems", "garage rock riffs",
                 "power chords and raw vocals", "a classic rock revival"),
        "Jazz": ("smoky saxophone solos", "bebop improvisation", "a swinging big band",
                 "cool jazz trumpet ballads", "a late night piano trio"),
        "Classical": ("a string quartet", "romantic era piano sonatas",
                      "baroque harpsichord suites",
                      "a full symphony orchestra", "opera arias"),
        "Hip-Hop": ("boom bap beats and sharp rhymes", "trap hi-hats and heavy bass",
                    "conscious rap lyrics", "freestyle battles", "sampled soul loops"),
        "Electronic": ("pulsing techno for the club", "ambient synth textures",
                       "deep house grooves",
                       "drum and bass breakbeats", "glitchy experimental electronica"),
        "Country": ("pedal steel and heartbreak", "banjo picking", "songs about small-town life",
                    "honky-tonk ballads", "outlaw country storytelling"),
        "Metal": ("blast beats and growled vocals", "thrash metal riffs", "doom metal sludge",
                  "symphonic metal choirs", "shredding guitar solos"),
        "Folk": ("acoustic guitar and harmonies", "traditional fiddle tunes", "protest songs",
                 "an intimate singer-songwriter record", "Celtic folk melodies"),
        "Reggae": ("offbeat skanking guitars", "roots reggae bass lines", "dub echoes",
                   "dancehall rhythms", "island vibes"),
        "Pop": ("catchy choruses and bright synths", "dance-pop singles", "bubblegum hooks",
                "a chart-topping ballad", "upbeat summer anthems"),
        "Soul": ("gospel-tinged vocals", "a Motown groove", "horn sections and funky bass",
                 "smooth rhythm and blues", "heartfelt soul ballads"),
        "Blues": ("delta slide guitar", "Chicago electric blues", "a harmonica and a lonely road",
                  "twelve-bar shuffles", "gritty blues vocals"),
    },
    "book": {
        "Crime Fiction": ("a hard-boiled detective", "a serial killer in a quiet suburb",
                          "a corrupt police department", "a forensic investigator",
                          "a mafia family"),
        "Science Fiction": ("a generation ship", "galactic empires at war", "cyberpunk hackers",
                            "terraforming Mars", "a post-apocalyptic wasteland"),
        "Fantasy Novel": ("a chosen one and a prophecy", "a magic school",
                          "warring houses and a throne",
                          "a thief in a city of mages", "a dark lord rising"),
        "Biography": ("the life of a famous inventor", "a world leader's memoir",
                      "an athlete's road to glory", "a musician's troubled life",
                      "a scientist who changed medicine"),
        "History": ("the fall of the Roman Empire", "the Second World War", "medieval Europe",
                    "the industrial revolution", "ancient Egypt"),
        "Self-Help": ("building better habits", "mindfulness and stress", "personal finance",
                      "productivity at work", "overcoming anxiety"),
        "Cookbook": ("Italian home cooking", "vegan recipes", "baking bread",
                     "quick weeknight dinners",
                     "Japanese street food"),
        "Romance Novel": ("a duke and a governess", "second chance love", "enemies to lovers",
                          "a small-town bakery romance", "a holiday love story"),
        "Children's Book": ("a bear who cannot sleep", "a brave little train", "learning to count",
                            "a bedtime story about the moon", "friendly monsters"),
        "Poetry": ("poems about love and loss", "nature and the seasons", "urban life in verse",
                   "haiku collections", "spoken word"),
        "Travel": ("backpacking across Asia", "a road trip through America", "hiking the Alps",
                   "the islands of Greece", "food markets of Mexico"),
    },
    "product": {
        "Laptops": ("a lightweight ultrabook", "a gaming laptop with a fast GPU",
                    "a business notebook", "a convertible touchscreen laptop",
"a budget Chromebook"),
        "Headphones": ("wireless noise cancelling headphones", "in-ear sport earbuds",
                       "studio monitor headphones", "bass-heavy over-ear headphones",
                       "true wireless earbuds"),
        "Kitchen": ("a non-stick frying pan", "a stand mixer", "an espresso machine",
                    "a chef's knife",
                    "a slow cooker", "an air fryer"),
        "Outdoor": ("a waterproof hiking jacket", "a two-person tent", "a camping stove",
                    "trekking poles", "an insulated sleeping bag"),
        "Fitness": ("adjustable dumbbells", "a yoga mat", "a smart fitness watch",
                    "resistance bands", "an indoor exercise bike"),
        "Toys": ("a building block set", "a remote control car", "a plush teddy bear",
                 "a wooden puzzle", "a board game for families"),
        "Beauty": ("a hydrating face serum", "a long-lasting lipstick", "an organic shampoo",
                   "a sunscreen for sensitive skin", "a hair dryer"),
        "Garden": ("a cordless lawn mower", "a set of pruning shears", "a raised planter bed",
                   "a garden hose reel", "organic fertiliser"),
        "Smartphones": ("a flagship phone with a triple camera", "a budget Android phone",
                        "a foldable smartphone", "a rugged phone", "a compact phone"),
        "Furniture": ("an ergonomic office chair", "a solid oak dining table", "a sofa bed",
                      "a standing desk", "a bookshelf"),
        "Pet Supplies": ("a cat scratching post", "a dog bed", "an automatic pet feeder",
                         "a bird cage", "grain-free dog food"),
        "Shoes": ("running shoes with cushioning", "leather boots", "trail running shoes",
                  "casual sneakers", "waterproof hiking boots"),
    },
    "game": {
        "RPG": ("an open-world role-playing game", "a party-based fantasy adventure",
                "a dungeon crawler with loot", "a branching story of choices", "a tactical RPG"),
        "Shooter": ("a first-person shooter", "a battle royale", "a tactical squad shooter",
                    "an arena shooter", "a sci-fi shooter campaign"),
        "Strategy": ("a real-time strategy game", "a turn-based empire builder",
                     "a city-building simulation", "a grand strategy war game", "a tower defense"),
        "Puzzle": ("a physics puzzle game", "a match-three puzzler", "an escape-room puzzle",
                   "a logic puzzle collection", "a tile-sliding brain teaser"),
        "Sports": ("a football simulation", "a basketball game", "a racing simulator",
                   "a golf game", "a skateboarding game"),
        "Platformer": ("a side-scrolling platformer", "a pixel-art platformer",
                       "a 3D platform adventure", "a speedrun-friendly platformer",
                       "a co-op platformer"),
    },
}
ADJECTIVES = ("Silent", "Broken", "Golden", "Hidden", "Last", "Crimson", "Lost", "Midnight",
              "Wild", "Frozen", "Electric", "Burning", "Hollow", "Quiet", "Savage", "Secret",
              "Endless", "Distant", "Iron", "Velvet", "Shattered", "Restless", "Sacred",
              "Bitter", "Brave", "Dark", "Bright", "Little", "Eternal", "Northern", "Southern",
              "Lonely", "Forgotten", "Final", "Scarlet", "Silver", "Wandering", "Fallen",
              "Rising", "Twisted", "Gentle", "Fearless", "Blue", "Red", "Black", "White", "Green",
              "Ancient", "Modern", "Falling")
NOUNS = ("River", "Empire", "Garden", "Storm", "Heart", "City", "Mountain", "Shadow", "Dream",
         "Kingdom", "Road", "Ocean", "Fire", "Star", "Promise", "Mirror", "Harbor", "Forest",
         "Machine", "Witness", "Island", "Letter", "Bridge", "Winter", "Summer", "Horizon",
         "Valley", "Crown", "Stranger", "Signal", "Engine", "Lantern", "Echo", "Desert",
         "Orchard", "Tide", "Voyage", "Whisper", "Circle", "Tower", "Frontier", "Legacy",
         "Season", "Ghost", "Rebel", "Saint", "Wolf", "Raven", "Compass", "Paradise")
FIRST = ("Anna", "James", "Maria", "David", "Sofia", "Liam", "Emma", "Noah", "Olivia", "Lucas",
         "Mia", "Ethan", "Chloe", "Mateo", "Hana", "Yusuf", "Aisha", "Kenji", "Ingrid", "Pavel",
         "Elena", "Tomas", "Priya", "Omar", "Grace", "Felix", "Nora", "Diego", "Lena", "Marco")
LAST = ("Smith", "Garcia", "Nakamura", "Okafor", "Johansson", "Rossi", "Kowalski", "Dubois",
        "Silva", "Chen", "Müller", "Novak", "Haddad", "Patel", "O'Brien", "Fischer", "Moreau",
        "Ivanova", "Kim", "Lopez", "Andersen", "Brennan", "Tanaka", "Costa", "Weber", "Singh")
MOODS = ("gripping", "heartfelt", "dark", "witty", "quiet", "sweeping", "tense", "playful",
         "moving", "bold", "atmospheric", "fast-paced", "thoughtful", "charming", "gritty",
         "uplifting", "haunting", "ambitious", "intimate", "stylish")
BRANDS = ("Nordvik", "Altura", "Kestrel", "Lumio", "Vantage", "Brightline", "Oakridge", "Zephyr",
          "Helix", "Cobalt", "Sierra", "Pinnacle", "Aurora", "Tundra", "Vertex", "Marlow")
MODELS = ("X", "Pro ", "Air ", "Max ", "S", "One ", "Go ", "Ultra ", "Lite ", "Neo ")
FEATURES = ("with a two-year warranty", "in three colours", "with free returns",
            "rated highly for durability", "made from recycled materials", "with a compact design",
            "for everyday use", "for professionals", "for beginners", "with long battery life",
            "easy to clean", "lightweight and portable")
TEMPLATES = {
    "film": ("{title} ({year}). {A_mood} {cat} film about {theme}. Directed by {person}.",
             "{title}: {theme}. {mood_cap} {cat} from {year}, starring {person}.",
             "In this {mood} {cat} movie, {theme}. {title}, {year}."),
    "music": ("{title} by {person}. {A_mood} {cat} album of {theme} ({year}).",
              "{person} - {title} ({year}): {theme}, {mood} {cat}.",
              "{mood_cap} {cat} record full of {theme}. {title}, {year}."),
    "book": ("{title} by {person}. {A_mood} {cat} book about {theme}.",
             "{cat}: {title}. {person} writes {a_mood} story of {theme} ({year}).",
             "{title} ({year}), {a_mood} read on {theme} by {person}."),
    "product": ("{brand} {title}: {theme} {feature}. Category: {cat}.",
                "{theme_cap} by {brand}, {feature}. {cat}.",
                "{brand} {cat} - {theme}, {feature}."),
    "game": ("{title} ({year}). {theme_cap}, {mood} and {mood2}. Genre: {cat}.",
             "{title}: {a_mood} {cat} game, {theme}.",
             "Play {title}, {theme} from {brand} Studios ({year})."),
}


@dataclass
class Catalog:
    """Items in id order: their JSON rows (item_id, text, attributes) and category numbers."""

    rows: list[dict[str, Any]]
    category: np.ndarray
    """Index into `categories` of each item."""
    categories: list[tuple[str, str]]
    """(domain, category) pairs."""

    @property
    def ids(self) -> list[str]:
        return [r["item_id"] for r in self.rows]


def make_catalog(n: int, seed: int = 0) -> Catalog:
    """n items over every domain's categories; category sizes vary (a few big, many small)."""
    rng = np.random.default_rng(seed)
    categories = [(d, c) for d, cats in DOMAINS.items() for c in cats]
    size_weight = rng.lognormal(0.0, 0.6, len(categories))
    category = rng.choice(len(categories), size=n, p=size_weight / size_weight.sum())
    rows = []
    for i, c in enumerate(category.tolist()):
        domain, cat = categories[c]
        themes = DOMAINS[domain][cat]
        r = rng.integers(0, 1 << 30, size=12)
        theme = themes[r[0] % len(themes)]
        title = f"{ADJECTIVES[r[1] % len(ADJECTIVES)]} {NOUNS[r[2] % len(NOUNS)]}"
        if r[3] % 3 == 0:
            title = f"The {title}"
        mood = MOODS[r[4] % len(MOODS)]
        article = "an" if mood[0] in "aeiou" else "a"
        year = 1950 + int(r[5] % 75)
        fields = {"title": title, "year": year, "mood": mood, "mood_cap": mood.capitalize(),
                  "a_mood": f"{article} {mood}", "A_mood": f"{article.capitalize()} {mood}",
                  "mood2": MOODS[r[10] % len(MOODS)], "cat": cat, "theme": theme,
                  "theme_cap": theme[0].upper() + theme[1:],
                  "person": f"{FIRST[r[6] % len(FIRST)]} {LAST[r[7] % len(LAST)]}",
                  "brand": f"{BRANDS[r[8] % len(BRANDS)]} {MODELS[r[2] % len(MODELS)]}"
                           f"{r[5] % 90 + 10}",
                  "feature": FEATURES[r[9] % len(FEATURES)]}
        templates = TEMPLATES[domain]
        text = templates[r[11] % len(templates)].format(**fields)
        attrs: dict[str, list[str]] = {"domain": [domain], "category": [cat]}
        if domain in ("film", "music", "book", "game"):
            attrs["decade"] = [f"{year // 10 * 10}s"]
        rows.append({"item_id": f"i{i}", "text": text, "attributes": attrs})
    return Catalog(rows, category.astype(np.int32), categories)


def write_catalog_jsonl(catalog: Catalog, path: Path) -> None:
    """One {item_id, text, attributes} per line: what `interest-server train --catalog` reads."""
    with path.open("w", encoding="utf-8") as out:
        for row in catalog.rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


# Event types as `interest-server train` and the CSV importer name them, with their shares.
EVENT_TYPES = ("view", "click", "like", "purchase")
TYPE_SHARE = (0.70, 0.20, 0.07, 0.03)
TYPE_WEIGHT = np.array([0.3, 0.6, 1.5, 2.0], dtype=np.float32)
"""interest_model.EVENT_WEIGHTS of the same types (for the query vectors built here)."""
T0 = 1_767_225_600  # 2026-01-01 UTC, seconds
SPAN_S = 120 * 86400


@dataclass
class Events:
    """Events sorted by timestamp; users u0..u{n-1}."""

    user: np.ndarray
    item: np.ndarray
    type: np.ndarray
    """Index into EVENT_TYPES."""
    ts: np.ndarray
    """Epoch seconds."""


def make_events(catalog: Catalog, users: int, events: int, seed: int = 1,
                zipf_a: float = 1.05, noise: float = 0.08) -> Events:
    """`events` events over `users` users. Each user has 2-4 taste categories (popular categories
    more often); activity per user is heavy-tailed; a session (3-15 events, minutes apart)
    stays in one taste; sessions spread over a random stretch of about 120 days; between them
    the user switches taste with probability 0.4 and, with probability 0.05, replaces a taste by
    a new one (drift); within a
    category items are picked by a Zipf law over a fixed popularity order, and a share `noise`
    of picks are globally popular items of any category."""
    rng = np.random.default_rng(seed)
    n_items, n_cat = len(catalog.rows), len(catalog.categories)
    members = [np.flatnonzero(catalog.category == c) for c in range(n_cat)]
    for m in members:
        rng.shuffle(m)  # the popularity order within the category
    cdfs = [np.cumsum(1.0 / np.arange(1, len(m) + 1) ** zipf_a) for m in members]
    global_order = rng.permutation(n_items)
    global_cdf = np.cumsum(1.0 / np.arange(1, n_items + 1) ** zipf_a)
    cat_pop = np.array([len(m) for m in members], dtype=np.float64) ** 1.5
    cat_pop /= cat_pop.sum()
    activity = rng.lognormal(0.0, 1.0, users)
    per_user = np.maximum(3, np.round(activity / activity.sum() * events)).astype(np.int64)
    out_u, out_i, out_t, out_ts = [], [], [], []
    for u in range(users):
        tastes = list(rng.choice(n_cat, size=int(rng.integers(2, 5)), replace=False, p=cat_pop))
        # Sessions (9 events on average) spread over a random stretch of the period.
        t = T0 + rng.uniform(0, SPAN_S * 0.4)
        gap = rng.uniform(0.3, 1.0) * (T0 + SPAN_S - t) / max(1.0, per_user[u] / 9)
        left, current = int(per_user[u]), 0
        while left > 0:
            if rng.random() < 0.05:
                tastes[int(rng.integers(len(tastes)))] = int(rng.choice(n_cat, p=cat_pop))
            if rng.random() < 0.4:
                current = int(rng.integers(len(tastes)))
            size = min(left, int(rng.integers(3, 16)))
            c = tastes[current % len(tastes)]
            picks = members[c][np.minimum(np.searchsorted(
                cdfs[c], rng.random(size) * cdfs[c][-1]), len(members[c]) - 1)]
            popular = rng.random(size) < noise
            if popular.any():
                picks[popular] = global_order[np.searchsorted(
                    global_cdf, rng.random(int(popular.sum())) * global_cdf[-1])]
            out_u.append(np.full(size, u, dtype=np.int32))
            out_i.append(picks.astype(np.int32))
            out_t.append(rng.choice(len(EVENT_TYPES), size=size, p=TYPE_SHARE).astype(np.int8))
            out_ts.append(t + np.cumsum(rng.uniform(20, 300, size)))
            t = out_ts[-1][-1] + rng.exponential(gap)
            left -= size
    ts = np.concatenate(out_ts)
    order = np.argsort(ts, kind="stable")
    return Events(np.concatenate(out_u)[order], np.concatenate(out_i)[order],
                  np.concatenate(out_t)[order], ts[order].astype(np.int64))


def write_events_csv(ev: Events, item_ids: list[str], path: Path) -> None:
    """user_id,item_id,type,value,timestamp (seconds): a layout `interest-server train` reads."""
    with path.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["user_id", "item_id", "type", "value", "timestamp"])
        for u, i, t, s in zip(ev.user.tolist(), ev.item.tolist(), ev.type.tolist(),
                              ev.ts.tolist(), strict=True):
            w.writerow([f"u{u}", item_ids[i], EVENT_TYPES[t], "", s])


def interest_queries(ev: Events, vectors: np.ndarray, users: np.ndarray, window: int = 50,
                     half_life_s: float = 30 * 86400) -> np.ndarray:
    """Per user: the normalised sum of the text vectors of their last `window` items, weighted
    by event type and by a time decay from their last event (the default model's vector)."""
    out = np.zeros((len(users), vectors.shape[1]), dtype=np.float32)
    order = np.argsort(ev.user, kind="stable")  # stable: each user's events stay in time order
    starts = np.searchsorted(ev.user[order], users)
    ends = np.searchsorted(ev.user[order], users, side="right")
    for n, (a, b) in enumerate(zip(starts, ends, strict=True)):
        rows = order[max(a, b - window):b]
        age = ev.ts[rows[-1]] - ev.ts[rows]
        w = TYPE_WEIGHT[ev.type[rows]] * np.exp2(-age / half_life_s).astype(np.float32)
        q = w @ vectors[ev.item[rows]]
        out[n] = q / max(float(np.linalg.norm(q)), 1e-12)
    return out
