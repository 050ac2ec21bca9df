"""A synthetic recommendation data set whose item texts carry meaning.

Each item is about one topic; its description is a sentence built from that topic's vocabulary, and
its image is a noisy pattern in the topic's colour. Each user prefers one or two topics and draws
most interactions from them, rating preferred items higher. A pretrained text encoder can therefore
tell which items go together before it sees a single interaction: exactly the signal transfer
learning should exploit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recfit.data.tables import ITEM, RATING, TIMESTAMP, USER, RecData

TOPICS: dict[str, list[str]] = {
    "space": ["planets", "rockets", "astronauts", "galaxies", "orbits", "telescopes", "comets", "moons"],
    "cooking": ["recipes", "pasta", "baking", "spices", "desserts", "chefs", "soups", "bread"],
    "football": ["goals", "strikers", "stadiums", "penalties", "referees", "leagues", "coaches", "derbies"],
    "music": ["guitars", "melodies", "concerts", "albums", "drummers", "symphonies", "pianos", "lyrics"],
    "finance": ["stocks", "investing", "banks", "dividends", "markets", "budgets", "loans", "pensions"],
    "gardening": ["roses", "compost", "seeds", "tomatoes", "greenhouses", "pruning", "orchards", "soil"],
    "medicine": ["doctors", "vaccines", "surgery", "patients", "hospitals", "therapies", "nurses", "clinics"],
    "computers": [
        "software",
        "laptops",
        "programming",
        "databases",
        "algorithms",
        "servers",
        "chips",
        "code",
    ],
}
ADJECTIVES = ["practical", "short", "complete", "modern", "illustrated", "classic", "friendly", "new"]
TEMPLATES = [
    "A {adj} guide to {a} and {b}.",
    "Everything about {a}, {b} and {c}.",
    "{A} explained: {b}, {c} and more.",
    "A {adj} story of {a} and {b}.",
]


def _description(rng: np.random.Generator, words: list[str]) -> str:
    a, b, c = rng.choice(words, size=3, replace=False)
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    return template.format(adj=ADJECTIVES[rng.integers(len(ADJECTIVES))], a=a, b=b, c=c, A=a.capitalize())


def _image(rng: np.random.Generator, topic: int, num_topics: int, size: int) -> np.ndarray:
    hue = np.array([np.cos(2 * np.pi * topic / num_topics), np.sin(2 * np.pi * topic / num_topics), 0.5])
    colour = (0.5 + 0.4 * hue) * 255
    stripes = (np.arange(size) // max(1, size // (2 + topic % 4))) % 2
    pattern = stripes[None, :] if topic % 2 else stripes[:, None]
    image = colour[None, None, :] * (0.6 + 0.4 * pattern[..., None]) + rng.normal(0, 12, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_synthetic(
    num_users: int = 150,
    num_items: int = 200,
    interactions_per_user: int = 12,
    preference_strength: float = 0.9,
    image_size: int = 32,
    seed: int = 0,
) -> RecData:
    """Generate users with topic preferences, described and pictured items, and their interactions."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    item_topic = rng.permutation(np.arange(num_items) % len(names))
    item_text = [_description(rng, TOPICS[names[t]]) for t in item_topic]
    images = np.stack([_image(rng, int(t), len(names), image_size) for t in item_topic])
    items_of_topic = [np.flatnonzero(item_topic == t) for t in range(len(names))]

    rows, user_text = [], []
    count = min(interactions_per_user, num_items)
    for user in range(num_users):
        liked = rng.choice(len(names), size=1 + int(rng.random() < 0.5), replace=False)
        user_text.append("Enjoys " + " and ".join(names[t] for t in liked) + ".")
        preferred = np.concatenate([items_of_topic[t] for t in liked])
        chosen: set[int] = set()
        while len(chosen) < count:
            pool = preferred if rng.random() < preference_strength else np.arange(num_items)
            chosen.add(int(rng.choice(pool)))
        for step, item in enumerate(rng.permutation(sorted(chosen))):
            likes = item_topic[item] in liked
            rating = float(np.clip(rng.normal(4.4 if likes else 2.2, 0.6), 1, 5).round())
            rows.append((user, int(item), rating, step))
    interactions = pd.DataFrame(rows, columns=[USER, ITEM, RATING, TIMESTAMP])
    return RecData(
        name="synthetic",
        interactions=interactions,
        num_users=num_users,
        num_items=num_items,
        item_text=item_text,
        item_images=images,
        user_text=user_text,
    )
