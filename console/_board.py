"""The console's picture of the sites: what the retained topics say, and the journal.

:class:`AlarmBoard` is pure: :meth:`AlarmBoard.apply` takes one MQTT message (topic, payload,
retain flag) and returns the :class:`Delta` values the browsers need; nothing here does I/O. Topics
are read per the gateway's MQTT contract (README.md, docs/rules.md), with ``P = {prefix}/{site}``:

* ``P/alarms/{device}/{point}/{rule}`` — retained alarm state; an empty payload deletes it.
* ``P/events/alarm`` — transitions (and flood starts and ends), written to the journal.
* ``P/{device}/status`` (and ``P/gateway/status``) — online, offline, maintenance.
* ``P/interlock/{area}`` — the power-off state of an area and the alarms that cause it.
* ``P/rescue/{device}`` — an open elevator rescue; an empty payload closes it.

The broker going away is recorded with :meth:`AlarmBoard.link_down`: everything stays, marked
stale. After a reconnect :meth:`AlarmBoard.begin_rebuild` opens a new generation; the retained
messages that follow refresh what still exists, and :meth:`AlarmBoard.finish_rebuild` drops what
the broker no longer holds.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import rules
from gateway.topics import ALARMS, CMD_REPLY, EVENTS_ALARM, INTERLOCK, RESCUE, STATUS
from rules import load_packs

__all__ = ["JOURNAL_SIZE", "AlarmBoard", "Delta", "TitleBook", "builtin_packs"]

#: Journal entries the console keeps (and sends to a page that connects).
JOURNAL_SIZE: Final = 500

Kind = Literal["alarm", "device", "interlock", "rescue", "journal", "link", "snapshot"]

#: Topic groups under ``P`` whose entries live on the board, by first topic segment.
_RETAINED_GROUPS: Final = {ALARMS: "alarm", INTERLOCK: "interlock", RESCUE: "rescue"}


@dataclass(frozen=True, slots=True)
class Delta:
    """One change to send to the browsers: ``doc`` None deletes ``key`` of ``kind``."""

    kind: Kind
    key: str
    doc: dict[str, Any] | None

    def event(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "doc": self.doc}


def builtin_packs() -> list[Path]:
    """The rule packs shipped in ``rules/packs``."""
    return sorted((Path(rules.__file__).parent / "packs").glob("*.yaml"))


class TitleBook:
    """Rule titles (Chinese and English, as the packs carry them) by rule id."""

    def __init__(self, titles: Mapping[str, str] | None = None) -> None:
        self.titles = dict(titles or {})

    @classmethod
    def from_packs(cls, paths: Iterable[Path]) -> TitleBook:
        """Titles of every rule in ``paths`` (raises ``rules.RulesConfigError`` on a bad pack)."""
        titles: dict[str, str] = {}
        for pack in load_packs(list(paths)):
            for rule in pack.rules:
                titles.setdefault(rule.id, rule.title)
        return cls(titles)

    def title(self, rule: str, message: str) -> str:
        """The pack's title of ``rule``; else the part of the message before ``": "``."""
        found = self.titles.get(rule)
        if found is not None:
            return found
        head, sep, _ = message.partition(": ")
        return head if sep else rule


def _decode(payload: bytes) -> dict[str, Any] | None:
    """A JSON object, or None for anything else (a bad payload never breaks the board)."""
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(slots=True)
class _Entry:
    doc: dict[str, Any]
    generation: int


@dataclass(slots=True)
class AlarmBoard:
    """Alarms, devices, interlocks, rescues and the journal of every site watched."""

    prefix: str
    sites: frozenset[str] = frozenset()  # empty: every site under the prefix
    titles: TitleBook = field(default_factory=TitleBook)
    journal_size: int = JOURNAL_SIZE
    connected: bool = False
    changed_at: float = 0.0  # when ``connected`` last changed (epoch seconds)
    error: str | None = None
    rebuilding: bool = False
    generation: int = 0
    _tables: dict[str, dict[str, _Entry]] = field(default_factory=dict)
    journal: deque[dict[str, Any]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.prefix = self.prefix.strip("/")
        self._tables = {k: {} for k in ("alarm", "device", "interlock", "rescue")}
        self.journal = deque(maxlen=self.journal_size)

    # ------------------------------------------------------------------ topics

    def subscriptions(self) -> list[str]:
        """Topic filters that cover everything the board reads (``cmd/reply`` included)."""
        roots = [f"{self.prefix}/{s}" for s in sorted(self.sites)] or [f"{self.prefix}/+"]
        tails = [f"{ALARMS}/#", EVENTS_ALARM, f"+/{STATUS}", f"{INTERLOCK}/+", f"{RESCUE}/+"]
        tails.append(CMD_REPLY)
        return [f"{root}/{tail}" for root in roots for tail in tails]

    def split(self, topic: str) -> tuple[str, list[str]] | None:
        """``(site, rest)`` for a topic under the prefix and a watched site, else None."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        site, _, rest = topic[len(head) :].partition("/")
        if not site or not rest or (self.sites and site not in self.sites):
            return None
        return site, rest.split("/")

    # ------------------------------------------------------------------ messages

    def apply(self, topic: str, payload: bytes, *, retained: bool, now: float) -> list[Delta]:
        """Take one message; return the changes for the browsers (none for foreign topics)."""
        where = self.split(topic)
        if where is None:
            return []
        site, parts = where
        group = _RETAINED_GROUPS.get(parts[0])
        if group == "alarm" and len(parts) == 4:
            return self._alarm(site, "/".join(parts[1:]), parts[3], payload)
        if group in ("interlock", "rescue") and len(parts) == 2:
            return self._retained(group, f"{site}/{parts[1]}", site, parts[1], payload)
        if "/".join(parts) == EVENTS_ALARM:
            doc = _decode(payload)
            return [] if doc is None else [self._journal_event(site, doc, now)]
        if len(parts) == 2 and parts[1] == STATUS:
            return self._retained("device", f"{site}/{parts[0]}", site, parts[0], payload)
        return []

    def _store(self, kind: str, key: str, doc: dict[str, Any] | None) -> Delta:
        table = self._tables[kind]
        if doc is None:
            table.pop(key, None)
        else:
            table[key] = _Entry(doc, self.generation)
        return Delta(kind, key, doc)  # type: ignore[arg-type]

    def _alarm(self, site: str, alarm_id: str, rule: str, payload: bytes) -> list[Delta]:
        key = f"{site}/{alarm_id}"
        if not payload:
            return [self._store("alarm", key, None)] if key in self._tables["alarm"] else []
        doc = _decode(payload)
        if doc is None:
            return []
        device, point, _ = alarm_id.split("/")
        doc = {
            **doc,
            "site": site,
            "id": alarm_id,
            "device": device,
            "point": point,
            "rule": rule,
            "title": self.titles.title(rule, str(doc.get("message", ""))),
        }
        if "area" not in doc:
            doc["area"] = self._area_of(site, alarm_id)
        return [self._store("alarm", key, doc)]

    def _retained(self, kind: str, key: str, site: str, name: str, payload: bytes) -> list[Delta]:
        if not payload:
            return [self._store(kind, key, None)] if key in self._tables[kind] else []
        doc = _decode(payload)
        if doc is None:
            return []
        label = {"device": "device", "interlock": "area", "rescue": "device"}[kind]
        doc = {**doc, "site": site, label: name}
        deltas = [self._store(kind, key, doc)]
        if kind == "interlock":
            deltas += self._areas_from(site, name, doc)
        return deltas

    def _area_of(self, site: str, alarm_id: str) -> str | None:
        for entry in self._tables["interlock"].values():
            doc = entry.doc
            if doc.get("site") == site and alarm_id in (doc.get("causes") or ()):
                return str(doc.get("area"))
        return None

    def _areas_from(self, site: str, area: str, interlock: dict[str, Any]) -> list[Delta]:
        """Alarms named as causes of an interlock learn their area."""
        deltas = []
        causes = interlock.get("causes")
        for alarm_id in causes if isinstance(causes, list) else ():
            entry = self._tables["alarm"].get(f"{site}/{alarm_id}")
            if entry is not None and entry.doc.get("area") != area:
                entry.doc = {**entry.doc, "area": area}
                deltas.append(Delta("alarm", f"{site}/{alarm_id}", entry.doc))
        return deltas

    def _journal_event(self, site: str, doc: dict[str, Any], now: float) -> Delta:
        entry = {
            "ts": doc.get("ts") if isinstance(doc.get("ts"), int | float) else round(now * 1000),
            "site": site,
            "source": "gateway",
            "type": doc.get("type", "transition"),
            "id": doc.get("id"),
            "from": doc.get("from"),
            "to": doc.get("to"),
            "level": doc.get("level"),
            "user": doc.get("user"),
            "reason": doc.get("reason"),
            "message": doc.get("message"),
        }
        return self.note(entry)

    def note(self, entry: dict[str, Any]) -> Delta:
        """Add one entry to the journal (gateway transitions, operator actions and refusals)."""
        self.journal.append(entry)
        return Delta("journal", str(len(self.journal)), entry)

    # ------------------------------------------------------------------ the broker link

    def link_up(self, now: float) -> list[Delta]:
        """Connected and subscribed: a new generation starts; old entries stay until rebuilt."""
        self.connected, self.error, self.rebuilding = True, None, True
        self.changed_at = now
        self.generation += 1
        return [self.link_delta()]

    def finish_rebuild(self) -> list[Delta]:
        """The retained messages are in: drop what the broker no longer holds, send it all.

        Only sites whose retained ``P/gateway/status`` came again are pruned: a broker that
        restarted without persistence holds nothing until each gateway has republished, and
        an alarm must not vanish from the page meanwhile."""
        refreshed = {
            e.doc.get("site")
            for k, e in self._tables["device"].items()
            if k.endswith("/gateway") and e.generation == self.generation
        }
        for table in self._tables.values():
            old = [k for k, e in table.items() if e.generation < self.generation]
            for key in old:
                if table[key].doc.get("site") in refreshed:
                    del table[key]
        self.rebuilding = False
        return [self.snapshot()]

    def link_down(self, now: float, error: str) -> list[Delta]:
        """The broker went away: keep everything, marked stale from ``now``."""
        if self.connected or self.error is None:
            self.changed_at = now
        self.connected, self.error, self.rebuilding = False, error, False
        return [self.link_delta()]

    def link_delta(self) -> Delta:
        return Delta("link", "broker", self.link_doc())

    def link_doc(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "stale": not self.connected or self.rebuilding,
            "rebuilding": self.rebuilding,
            "since": round(self.changed_at * 1000),
            "error": self.error,
        }

    # ------------------------------------------------------------------ reading

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        entry = self._tables[kind].get(key)
        return None if entry is None else entry.doc

    def alarms(self) -> list[dict[str, Any]]:
        """Active alarms, priority first (1 is highest), then newest first."""
        docs = [e.doc for e in self._tables["alarm"].values()]
        return sorted(docs, key=lambda d: (_priority(d), -_ts(d)))

    def snapshot(self) -> Delta:
        doc = {
            "link": self.link_doc(),
            "alarms": {k: e.doc for k, e in self._tables["alarm"].items()},
            "devices": {k: e.doc for k, e in self._tables["device"].items()},
            "interlocks": {k: e.doc for k, e in self._tables["interlock"].items()},
            "rescues": {k: e.doc for k, e in self._tables["rescue"].items()},
            "journal": list(self.journal),
        }
        return Delta("snapshot", "all", doc)


def _priority(doc: Mapping[str, Any]) -> float:
    p = doc.get("priority")
    return float(p) if isinstance(p, int | float) and not isinstance(p, bool) else 99.0


def _ts(doc: Mapping[str, Any]) -> float:
    t = doc.get("ts")
    return float(t) if isinstance(t, int | float) and not isinstance(t, bool) else 0.0
