"""People and conversations of a generated export, and the plan of where each message goes.

Planning is separate from writing: every chat, its members and its number of messages are
fixed before the first byte is written, so the writers can stream with flat memory.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from .vocabulary import (
    BAD_KINDS,
    MEMBER_SHAPES,
    MESSAGE_TYPES,
    TICKS,
    _DIM_FEATURES,
    _FIRST,
    _HANDLES,
    _LAST,
    _SPECIAL_TABLES,
    _TOPICS,
    _TYPE_TABLE,
    _VARIANT_RECIPES,
)


@dataclass
class _Person:
    mri: str
    name: str
    from_: str


@dataclass
class _Conv:
    id: str
    kind: str
    display_name: str | None
    mode: str = "list"  # list | empty | null | missing
    weight: float = 1.0
    others: list[_Person] = field(default_factory=list)
    shape: str = "string"
    float_version: bool = False
    extra_thread: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    start_t: int = 0
    end_t: int = 0
    features: dict[int, dict[str, str]] = field(default_factory=dict)
    bad: dict[int, list[str]] = field(default_factory=dict)
    album_left: int = 0
    album_id: str = ""



def _ticks(dt: datetime) -> int:
    """Whole-second 100 ns ticks since the epoch; naive datetimes are UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * TICKS



class _Planner:
    """Mixin of the generator: which chats exist, who is in them, how many messages each gets, where
    every type and quirk goes. Nothing is written here; the plan is what the writers follow."""

    def _hex(self, bits: int) -> str:
        return f"{self.rng.getrandbits(bits):0{bits // 4}x}"

    def _name(self) -> str:
        return f"{self.rng.choice(_FIRST)} {self.rng.choice(_LAST)}"

    def _unique(self, make: Callable[[], str]) -> str:
        """Ids must not collide: conversations are keyed by id."""
        while True:
            v = make()
            if v not in self.used_ids:
                self.used_ids.add(v)
                return v

    def _person(self, form: str | None = None) -> _Person:
        """A contact in one of the id forms seen in real exports."""
        rng = self.rng
        form = form or rng.choices(("cid", "live", "legacy"), (50, 30, 20))[0]
        name = self._name()
        if form == "cid":
            mri = self._unique(lambda: "8:live:.cid." + self._hex(64))
        elif form == "live":
            mri = self._unique(lambda: f"8:live:{rng.choice(_HANDLES)}{rng.randrange(1, 9999)}")
        else:
            mri = self._unique(lambda: f"8:{rng.choice(_HANDLES).replace('.', '_')}{rng.randrange(10, 99999)}")
        return _Person(mri, name, mri)

    def _one_to_one(self, form: str) -> _Conv:
        """A 1:1 chat; its id is the other person's id in one of the known forms."""
        rng = self.rng
        if form == "phone":
            mri = self._unique(lambda: f"4:+1555{rng.randrange(10**6, 10**7)}")
            peer = _Person(mri, mri[2:], mri)
            cid = mri
        elif form == "guest":
            mri = self._unique(lambda: f"guest:{rng.choice(_HANDLES)}_{self._hex(24)}")
            peer = _Person(mri, "Guest " + rng.choice(_FIRST), mri)
            cid = mri
        elif form == "prefixless":
            peer = self._person("cid")
            cid = peer.mri[2:]
        else:
            peer = self._person(form)
            cid = peer.mri
        name = None if rng.random() < 0.6 or form == "legacy" or form == "cid" and rng.random() < 0.5 else peer.name
        return _Conv(cid, "one_to_one", name, others=[peer], weight=rng.paretovariate(1.1))

    def _group(self, suffix: str, members: int, shape: str) -> _Conv:
        """A group thread with members, topic and the optional thread properties."""
        rng = self.rng
        if suffix == "p2p.thread.skype":
            body = base64.b64encode(rng.getrandbits(240).to_bytes(30, "big")).decode().replace("/", "_")
            cid = self._unique(lambda: f"19:{body}@{suffix}")
        else:
            cid = self._unique(lambda: f"19:{self._hex(128)}@{suffix}")
        others = [self._person() for _ in range(members)]
        topic = rng.choice(_TOPICS)
        extra: dict[str, Any] = {}
        if rng.random() < 0.4:
            extra["picture"] = f"URL@https://api.asm.skype.com/v1/objects/0-neu-d6-{self._hex(128)}/views/avatar_fullsize"
        if rng.random() < 0.3:
            extra["description"] = "Anything goes &amp; nothing is off-topic"
        if rng.random() < 0.3:
            extra["joiningEnabled"] = rng.choice(("true", "false"))
        display = topic if rng.random() < 0.8 else ", ".join(p.name for p in others[:3])
        return _Conv(cid, "group", display, others=others, shape=shape, extra_thread=extra,
                     weight=rng.paretovariate(1.1))

    def _plan_conversations(self) -> list[_Conv]:
        """Every kind and MessageList shape once, then more chats as the export grows."""
        rng = self.rng
        convs: list[_Conv] = [self._one_to_one(f) for f in ("cid", "live", "legacy", "prefixless", "phone", "guest")]
        heavy = self._group("thread.skype", 30, "string")
        main_group = self._group("thread.v2", 6, "list")
        convs += [heavy, main_group, self._group("p2p.thread.skype", 3, "objects"),
                  self._group("cast.skype", 4, "null")]
        if self.heavy_share > 0:
            self.heavy = heavy
        self.main_group = main_group
        convs.append(_Conv("28:concierge", "bot", "Skype Concierge", weight=0.3,
                           others=[_Person("28:concierge", "Skype Concierge", "28:concierge")]))
        for sid in ("48:calllogs", "48:notes", "48:notifications", "48:mentions", "48:drafts"):
            convs.append(_Conv(sid, "special", None, weight=0.3))
        self._by_id = {c.id: c for c in convs}
        self._by_id["48:drafts"].mode = "missing"
        self._by_id["48:mentions"].mode = "null"
        empty = self._one_to_one("cid")
        empty.mode = "empty"
        convs.append(empty)
        extra = min(1200, self.n_messages // 300)
        for i in range(extra):
            roll = rng.random()
            if roll < 0.6:
                c = self._one_to_one(rng.choices(("cid", "live", "legacy", "prefixless", "phone", "guest"),
                                                 (40, 25, 20, 8, 4, 3))[0])
            elif roll < 0.97:
                suffix = rng.choices(("thread.skype", "thread.v2", "p2p.thread.skype", "cast.skype"), (55, 30, 10, 5))[0]
                c = self._group(suffix, rng.randrange(2, 12), MEMBER_SHAPES[i % 4])
            else:
                bot = self._unique(lambda: f"28:{self._hex(32)}")
                c = _Conv(bot, "bot", rng.choice(("Copilot", "Bing", "Survey Bot")), weight=0.3,
                          others=[_Person(bot, "Bot", bot)])
            m = rng.random()
            if m < 0.01:
                c.mode = "missing"
            elif m < 0.02:
                c.mode = "null"
            elif m < 0.04:
                c.mode = "empty"
            convs.append(c)
        for c in convs:
            c.float_version = rng.random() < 0.3
            if c.kind == "special":
                c.others = [self._person() for _ in range(3)]
        rng.shuffle(convs)
        return convs

    def _allocate(self) -> None:
        """Split the distinct messages over the chats: exact total, skewed like real use."""
        total = self.n_messages
        heavy_n = round(total * self.heavy_share) if self.heavy else 0
        if self.heavy:
            self.heavy.n = heavy_n
        rest = total - heavy_n
        pool = [c for c in self.convs if c.mode == "list" and c is not self.heavy]
        if not pool:
            if self.heavy:
                self.heavy.n += rest
            return
        reserve = min(20, rest // 4) if self.main_group in pool else 0
        self.main_group.n += reserve
        rest -= reserve
        if rest >= len(pool):
            for c in pool:
                c.n += 1
            rest -= len(pool)
            weights = [min(c.weight, 200.0) for c in pool]
            wsum = sum(weights)
            shares = [w / wsum * rest for w in weights]
            floors = [int(s) for s in shares]
            left = rest - sum(floors)
            order = sorted(range(len(pool)), key=lambda i: (floors[i] - shares[i], i))
            for i in order[:left]:
                floors[i] += 1
            for c, k in zip(pool, floors):
                c.n += k
        else:
            weights = [min(c.weight, 200.0) for c in pool]
            for c in self.rng.choices(pool, weights, k=rest):
                c.n += 1
        span = self.end_t - self.start_t
        for c in self.convs:
            if c is self.heavy or span < TICKS * 86400:
                c.start_t, c.end_t = self.start_t, self.end_t
                continue
            length = int(span * (0.05 + 0.95 * self.rng.random() ** 0.5))
            c.start_t = self.start_t + int((span - length) * self.rng.random())
            c.end_t = c.start_t + length

    def _kind_tables(self) -> dict[str, tuple[float, list[str], list[float]]]:
        """Weighted type tables per chat kind; group-only types are boosted so the export-wide
        shares stay near the real ones even though only part of the messages are in groups."""
        in_groups = sum(c.n for c in self.convs if c.kind == "group")
        in_chats = sum(c.n for c in self.convs if c.kind in ("group", "one_to_one")) or 1
        group_boost = min(max(in_chats / max(in_groups, 1), 1.0), 4.0)
        one_boost = min(max(in_chats / max(in_chats - in_groups, 1), 1.0), 4.0)
        tables: dict[str, tuple[float, list[str], list[float]]] = {}
        for kind in ("group", "one_to_one"):
            items = []
            for t, w, scope in _TYPE_TABLE:
                if scope == "any":
                    items.append((t, w))
                elif scope == kind:
                    items.append((t, w * (group_boost if kind == "group" else one_boost)))
            tables[kind] = self._table(items)
        for key, items in _SPECIAL_TABLES.items():
            tables[key] = self._table(list(items))
        return tables

    @staticmethod
    def _table(items: list[tuple[str, float]]) -> tuple[float, list[str], list[float]]:
        other = sum(w for _, w in items)
        cum: list[float] = []
        acc = 0.0
        for _, w in items:
            acc += w / 100.0
            cum.append(acc)
        return max(0.0, 1.0 - other / 100.0), [t for t, _ in items], cum

    def _place_features(self) -> None:
        """Pin every type and quirk to a concrete message slot, so even small exports have them all."""
        rng = self.rng
        chats = [c for c in self.convs if c.kind in ("group", "one_to_one") and c.mode == "list" and c.n > 0]
        groups = [c for c in chats if c.kind == "group"]
        ones = [c for c in chats if c.kind == "one_to_one"]
        bots = [c for c in self.convs if c.kind == "bot" and c.n > 0]

        def place(pool: list[_Conv], dim: str, value: str, pair: str | None = None) -> bool:
            cands = [c for c in pool if sum(1 for f in c.features.values() if dim in f) < c.n - (1 if pair else 0)]
            if not cands:
                return False
            conv = cands[rng.randrange(len(cands))]
            limit = conv.n - (1 if pair else 0)
            for _ in range(50):
                i = rng.randrange(limit)
                if dim not in conv.features.get(i, {}) and (not pair or dim not in conv.features.get(i + 1, {})):
                    break
            else:
                free = [i for i in range(limit) if dim not in conv.features.get(i, {})
                        and (not pair or dim not in conv.features.get(i + 1, {}))]
                if not free:
                    return False
                i = free[0]
            conv.features.setdefault(i, {})[dim] = value
            if pair:
                conv.features.setdefault(i + 1, {})[dim] = pair
            return True

        scope = {t: s for t, _, s in _TYPE_TABLE}
        recipes = sorted(MESSAGE_TYPES, key=lambda t: scope.get(t) != "group")
        for t in recipes + list(_VARIANT_RECIPES):
            s = scope.get(t, "any")
            pool = groups if s == "group" else ones if s == "one_to_one" else chats
            if t == "Event/BingBot" and bots:
                pool = bots
            if t == "RichText/Media_Album":
                place(pool, "recipe", t, pair="album_photo") or place(chats, "recipe", t, pair="album_photo")
            elif not place(pool, "recipe", t) and pool is not chats:
                place(chats, "recipe", t)
        for dim, value in _DIM_FEATURES:
            place([c for c in chats if c.n >= 2] if dim == "order" else chats, dim, value,
                  pair="next" if dim == "order" else None)

    def _place_bad_records(self) -> None:
        """Spread the unusable records over chats that have messages."""
        pool = [c for c in self.convs if c.mode in ("list", "empty")]
        with_msgs = [c for c in pool if c.n > 0] or pool
        for k in range(self.n_bad):
            c = with_msgs[self.rng.randrange(len(with_msgs))]
            pos = self.rng.randrange(c.n) if c.n else 0
            c.bad.setdefault(pos, []).append(BAD_KINDS[k % len(BAD_KINDS)])
