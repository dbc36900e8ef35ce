"""Alarm lifecycle (ISA-18.2) over arrays: delays, acknowledgement, shelving, suppression,
removal from service.

Every alarm row carries its *effective level* (after on/off delays), whether it is acknowledged,
whether it is shelved (and until when), whether an operator removed it from service, and the
state last announced. The displayed state is::

    OUT_OF_SERVICE  if removed from service
    SHELVED         elif shelved
    OUT_OF_SERVICE  elif the device is in maintenance and (active or unacknowledged)
    SUPPRESSED      elif suppressed and (active or unacknowledged)
    UNACK_ACTIVE  elif active and not acknowledged
    ACK_ACTIVE    elif active
    RTN_UNACK     elif not acknowledged
    NORMAL        otherwise

Alarms that demand power-off, the methane table's alarms and every alarm with a priority-1 level
are never suppressed: while their device is offline they keep their state and level, marked
``stale``.

A transition is announced when the displayed state changes, when the level of an active
(UNACK_ACTIVE / ACK_ACTIVE) alarm changes, or when a shown alarm's ``stale`` mark changes.
Activation or escalation (to a more severe level, or to the other side) clears the acknowledgement;
de-escalation and clearing keep it. When a shelve expires (or an operator unshelves the alarm)
the alarm is unacknowledged if it is active then, acknowledged if not.

Removal from service (``out_of_service`` command) is per alarm: the alarm shows
``OUT_OF_SERVICE`` whatever its level, an activation asks for no acknowledgement (nothing is
annunciated), a shelve it had ends and it cannot be shelved or acknowledged while removed. It still
follows its level, so a power-off it demands is still demanded: removal silences the annunciation,
never the interlock. Returning it to service is like a shelve expiry: unacknowledged if active
then, acknowledged if not.

Maintenance (calibration, 标校) is per device: while it lasts, the device's alarms still follow
their levels but an activation asks for no acknowledgement (calibration gas is not an incident),
and the alarms show ``OUT_OF_SERVICE`` while active. When it ends, an alarm still active is
unacknowledged (it is real now); one that cleared shows as it would have without maintenance.

Only rows that may have changed (new level, expired shelve, device going on/offline, a command)
are examined, so a quiet tick costs a few array comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

from ._arrays import F64, I8, RAISE_TABLE, BoolArray, IdxArray
from ._binding import COMM_POINT, Binding, format_message
from ._model import STATE_CODES, STATES_BY_CODE, AlarmState, AlarmTransition, State

__all__ = ["AlarmBook"]

NORMAL: Final = np.int8(STATE_CODES[State.NORMAL])
UNACK_ACTIVE: Final = np.int8(STATE_CODES[State.UNACK_ACTIVE])
ACK_ACTIVE: Final = np.int8(STATE_CODES[State.ACK_ACTIVE])
RTN_UNACK: Final = np.int8(STATE_CODES[State.RTN_UNACK])
SHELVED: Final = np.int8(STATE_CODES[State.SHELVED])
SUPPRESSED: Final = np.int8(STATE_CODES[State.SUPPRESSED])
OUT_OF_SERVICE: Final = np.int8(STATE_CODES[State.OUT_OF_SERVICE])


class AlarmBook:
    """Per-alarm lifecycle arrays and the transitions they produce."""

    def __init__(self, bindings: Sequence[Binding], n_devices: int) -> None:
        n = len(bindings)
        self.bindings = bindings
        self.size = n
        self.eff: I8 = np.zeros(n, dtype=np.int8)
        self._cand: I8 = np.zeros(n, dtype=np.int8)
        self._since: F64 = np.zeros(n)
        self._on_delay = np.array([b.on_delay_s for b in bindings], dtype=np.float64)
        self._off_delay = np.array([b.off_delay_s for b in bindings], dtype=np.float64)
        self.last_level: I8 = np.zeros(n, dtype=np.int8)
        self.acked: BoolArray = np.ones(n, dtype=np.bool_)
        self.shelved: BoolArray = np.zeros(n, dtype=np.bool_)
        self.shelved_until: F64 = np.full(n, np.nan)
        #: Removed from service by an operator (``out_of_service`` command).
        self.removed: BoolArray = np.zeros(n, dtype=np.bool_)
        self.shown: I8 = np.full(n, NORMAL, dtype=np.int8)
        self._shown_level: I8 = np.zeros(n, dtype=np.int8)
        self.state_ts: F64 = np.zeros(n)
        #: What each rule compared at the latest tick, and trend forecasts (NaN = none).
        self.value: F64 = np.full(n, np.nan)
        self.forecast: F64 = np.full(n, np.nan)
        self._priority = np.array([b.priorities for b in bindings], dtype=np.int8).reshape(n, 6)
        self._limit = np.array([b.limits for b in bindings], dtype=np.float64).reshape(n, 6)
        self._device = np.array([b.device_index for b in bindings], dtype=np.intp)
        self._suppressible = np.array([b.suppressible for b in bindings], dtype=np.bool_)
        self._power_off_code = np.array([b.power_off_code for b in bindings], dtype=np.int8)
        self.device_suppressed: BoolArray = np.zeros(n_devices, dtype=np.bool_)
        self._device_offline: BoolArray = np.zeros(n_devices, dtype=np.bool_)
        self.stale: BoolArray = np.zeros(n, dtype=np.bool_)
        self._shown_stale: BoolArray = np.zeros(n, dtype=np.bool_)
        self.device_maintenance: BoolArray = np.zeros(n_devices, dtype=np.bool_)
        # point rows of each device, whose suppression and staleness follow it, and all its
        # rows (CSR layout)
        self._on_point = np.array([b.point != COMM_POINT for b in bindings], dtype=np.bool_)
        self._dev_rows, self._dev_start = _rows_by_device(
            self._device, np.flatnonzero(self._on_point), n_devices
        )
        self._all_rows, self._all_start = _rows_by_device(
            self._device, np.arange(n, dtype=np.intp), n_devices
        )
        self._shelf: set[int] = set()

    # -- tick stages -----------------------------------------------------------------------
    def apply_delays(self, raw: I8, now: float, part: slice) -> tuple[IdxArray, I8]:
        """Advance on/off delays of the rows in ``part`` with this tick's raw levels (``raw``
        holds those rows only). Returns the rows whose effective level changed and their
        previous levels."""
        cand, since, eff = self._cand[part], self._since[part], self.eff[part]
        changed = raw != cand
        np.copyto(since, now, where=changed)
        np.copyto(cand, raw)
        pending = np.flatnonzero(raw != eff)
        if pending.size == 0:
            return pending, eff[pending]
        new = raw[pending]
        old = eff[pending]
        rows = pending + (part.start or 0)
        delay = np.where(RAISE_TABLE[old, new], self._on_delay[rows], self._off_delay[rows])
        fire = (now - since[pending]) >= delay
        previous = old[fire]
        eff[pending[fire]] = new[fire]
        return rows[fire], previous

    def note_level_changes(self, rows: IdxArray, previous: I8) -> None:
        """Acknowledgement and last level after effective-level changes of ``rows``."""
        new = self.eff[rows]
        raised = rows[RAISE_TABLE[previous, new]]
        quiet = self.device_maintenance[self._device[raised]] | self.removed[raised]
        self.acked[raised[~quiet]] = False
        active = new != 0
        self.last_level[rows[active]] = new[active]

    def expire_shelves(self, now: float) -> IdxArray:
        """Unshelve rows whose shelve time is over; returns them."""
        if not self._shelf:
            return np.zeros(0, dtype=np.intp)
        rows = np.fromiter(sorted(self._shelf), dtype=np.intp, count=len(self._shelf))
        rows = rows[self.shelved_until[rows] <= now]
        self._end_shelves(rows)
        return rows

    def _end_shelves(self, rows: IdxArray) -> None:
        """End the shelves of ``rows``: unacknowledged where active now, acknowledged if not."""
        for row in rows.tolist():
            self._shelf.discard(row)
        self.shelved[rows] = False
        self.shelved_until[rows] = np.nan
        self.acked[rows] = self.eff[rows] == 0

    def set_online(self, online: BoolArray, has_comm: BoolArray) -> IdxArray:
        """Update device suppression and staleness; returns the point rows of devices that
        went offline or came back."""
        offline = ~online
        devices = np.flatnonzero(offline != self._device_offline)
        if devices.size == 0:
            return np.zeros(0, dtype=np.intp)
        self._device_offline = offline
        self.device_suppressed = has_comm & offline
        parts = [self._dev_rows[self._dev_start[d] : self._dev_start[d + 1]] for d in devices]
        rows = np.concatenate(parts)
        self.stale[rows] = offline[self._device[rows]]
        return rows

    def set_maintenance(self, device: int, on: bool) -> IdxArray:
        """Put a device in maintenance or take it out; returns its rows (to announce).

        At the end, rows still active become unacknowledged: the operator sees them again."""
        self.device_maintenance[device] = on
        rows = self._all_rows[self._all_start[device] : self._all_start[device + 1]]
        if not on:
            self.acked[rows[self.eff[rows] != 0]] = False
        return rows

    def in_maintenance(self) -> BoolArray:
        """Per row: its device is in maintenance (its alarm is no over-limit, no demand)."""
        return self.device_maintenance[self._device]

    # -- display ---------------------------------------------------------------------------
    def _display(self, rows: IdxArray) -> I8:
        active = self.eff[rows] != 0
        acked = self.acked[rows]
        suppressed = self._suppressible[rows] & self.device_suppressed[self._device[rows]]
        state = np.where(active, np.where(acked, ACK_ACTIVE, UNACK_ACTIVE), RTN_UNACK)
        state = np.where(~active & acked, NORMAL, state)
        state = np.where(suppressed & (active | ~acked), SUPPRESSED, state)
        maintenance = self.device_maintenance[self._device[rows]]
        state = np.where(maintenance & (active | ~acked), OUT_OF_SERVICE, state)
        state = np.where(self.shelved[rows], SHELVED, state)
        return np.where(self.removed[rows], OUT_OF_SERVICE, state).astype(np.int8)

    def announce(
        self,
        rows: IdxArray,
        now: float,
        user: str | None = None,
        *,
        reason: str | None = None,
        always: bool = False,
    ) -> list[AlarmTransition]:
        """Recompute the displayed state of ``rows`` (sorted, unique) and return a transition
        for each row whose displayed state (or active level) changed — for every row when
        ``always`` (a command that changed the alarm even if not what it shows)."""
        if rows.size == 0:
            return []
        state = self._display(rows)
        level = self.eff[rows]
        old = self.shown[rows]
        in_active = (state == UNACK_ACTIVE) | (state == ACK_ACTIVE)
        stale = self.stale[rows]
        emit = (
            (state != old)
            | (in_active & (level != self._shown_level[rows]))
            | ((state != NORMAL) & (stale != self._shown_stale[rows]))
            | always
        )
        self._shown_level[rows] = level
        self._shown_stale[rows] = stale
        out_rows = rows[emit]
        if out_rows.size == 0:
            return []
        self.shown[out_rows] = state[emit]
        self.state_ts[out_rows] = now
        return [
            self._transition(
                int(r), STATES_BY_CODE[int(f)], STATES_BY_CODE[int(t)], now, user, reason=reason
            )
            for r, f, t in zip(
                out_rows.tolist(), old[emit].tolist(), state[emit].tolist(), strict=True
            )
        ]

    def _report_level(self, row: int) -> int:
        eff = int(self.eff[row])
        return eff if eff else int(self.last_level[row])

    def power_off(self, row: int) -> bool | None:
        """Whether ``row`` demands power-off now (``None``: its rule never does)."""
        code = int(self._power_off_code[row])
        if code == 0:
            return None
        return int(self.eff[row]) >= code and not self.device_maintenance[self._device[row]]

    def _transition(
        self,
        row: int,
        from_state: State,
        to_state: State,
        now: float,
        user: str | None,
        *,
        reason: str | None = None,
    ) -> AlarmTransition:
        b = self.bindings[row]
        code = self._report_level(row)
        level = b.level_label(code)
        value = float(self.value[row])
        limit = float(self._limit[row, code])
        forecast = float(self.forecast[row])
        return AlarmTransition(
            id=b.alarm_id,
            device=b.device,
            point=b.point,
            rule=b.rule_id,
            level=level,
            priority=int(self._priority[row, code]),
            from_state=from_state,
            to_state=to_state,
            value=value,
            limit=limit,
            message=format_message(b, level, value, limit),
            ts=now,
            forecast_s=None if math.isnan(forecast) else forecast,
            user=user,
            power_off=self.power_off(row),
            stale=bool(self.stale[row]),
            reason=reason,
        )

    def state_of(self, row: int) -> AlarmState:
        """The current state record of one alarm."""
        b = self.bindings[row]
        code = self._report_level(row)
        level = b.level_label(code)
        value = float(self.value[row])
        limit = float(self._limit[row, code])
        forecast = float(self.forecast[row])
        until = float(self.shelved_until[row])
        return AlarmState(
            id=b.alarm_id,
            device=b.device,
            point=b.point,
            rule=b.rule_id,
            state=STATES_BY_CODE[int(self.shown[row])],
            level=level,
            priority=int(self._priority[row, code]),
            value=value,
            limit=limit,
            message=format_message(b, level, value, limit),
            ts=float(self.state_ts[row]),
            forecast_s=None if math.isnan(forecast) else forecast,
            shelved_until=None if math.isnan(until) else until,
            power_off=self.power_off(row),
            stale=bool(self.stale[row]),
        )

    # -- commands --------------------------------------------------------------------------
    def acknowledge(self, row: int) -> bool:
        """Mark ``row`` acknowledged; False if it was not awaiting acknowledgement."""
        if self.acked[row]:
            return False
        self.acked[row] = True
        return True

    def shelve(self, row: int, until: float) -> None:
        self.shelved[row] = True
        self.shelved_until[row] = until
        self._shelf.add(row)

    def unshelve(self, row: int) -> bool:
        """End ``row``'s shelve now, as if it expired; False if it was not shelved."""
        if not self.shelved[row]:
            return False
        self._end_shelves(np.array([row], dtype=np.intp))
        return True

    def remove_from_service(self, row: int) -> bool:
        """Take ``row`` out of service (a shelve it had ends); False if it already was."""
        if self.removed[row]:
            return False
        if self.shelved[row]:
            self._end_shelves(np.array([row], dtype=np.intp))
        self.removed[row] = True
        return True

    def return_to_service(self, row: int) -> bool:
        """Put ``row`` back in service, unacknowledged if active; False if it was in service."""
        if not self.removed[row]:
            return False
        self.removed[row] = False
        self.acked[row] = self.eff[row] == 0
        return True


def _rows_by_device(
    device_of_row: IdxArray, rows: IdxArray, n_devices: int
) -> tuple[IdxArray, IdxArray]:
    """``rows`` grouped by device (CSR): device ``d``'s are ``out[start[d]:start[d + 1]]``."""
    order = np.argsort(device_of_row[rows], kind="stable")
    grouped = rows[order]
    start = np.searchsorted(device_of_row[grouped], np.arange(n_devices + 1), side="left")
    return grouped, start
