"""``hazardgw dashboards push``: upload the Grafana boards in dashboards/ through the HTTP API.

For a Grafana that does not load dashboards/provisioning/ itself (a shared or hosted Grafana).
The boards refer to their datasource by uid ``hazard-influxdb``: create an InfluxDB 2 (Flux)
datasource with that uid there, as dashboards/provisioning/datasources/influxdb.yaml does.

grafana-client is an optional extra, kept out of the gateway's own environment because it pulls
in urllib3-future, which replaces urllib3 for every package installed beside it. Install it into
a separate environment::

    python -m venv .venv-grafana
    .venv-grafana/bin/pip install '.[grafana]'
    GRAFANA_TOKEN=... .venv-grafana/bin/hazardgw dashboards push --url http://grafana:3000 \\
        --token-env GRAFANA_TOKEN
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError

__all__ = [
    "DATASOURCE_UID",
    "DashboardsError",
    "board_files",
    "find_boards_dir",
    "load_boards",
    "push_dashboards",
]

log = logging.getLogger(__name__)

DATASOURCE_UID = "hazard-influxdb"
"""The uid every board's panels name as their datasource."""

INSTALL_HINT = (
    "grafana-client is not installed. It is an optional extra that replaces urllib3 for every "
    "package in its environment, so install it into a separate venv:\n"
    "    python -m venv .venv-grafana\n"
    "    .venv-grafana/bin/pip install 'hazard-gateway[grafana]'   "
    "(from a checkout: .venv-grafana/bin/pip install '.[grafana]')\n"
    "and run .venv-grafana/bin/hazardgw dashboards push ..."
)


class DashboardsError(GatewayError):
    """The boards could not be found, read or uploaded."""


def find_boards_dir(boards_dir: str | Path | None = None) -> Path:
    """``boards_dir`` if given, else dashboards/ of this checkout, else ./dashboards."""
    candidates = (
        [Path(boards_dir)]
        if boards_dir is not None
        else [Path(__file__).resolve().parent.parent / "dashboards", Path.cwd() / "dashboards"]
    )
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise DashboardsError(f"no dashboard JSON files found (looked in {tried})")


def board_files(boards_dir: str | Path | None = None) -> list[Path]:
    return sorted(find_boards_dir(boards_dir).glob("*.json"))


def load_boards(boards_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every board JSON, checked to have a uid and a title."""
    boards = []
    for path in board_files(boards_dir):
        try:
            board = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DashboardsError(f"{path}: cannot read the board: {exc}") from exc
        if not isinstance(board, dict) or not board.get("uid") or not board.get("title"):
            raise DashboardsError(f"{path}: a board needs a 'uid' and a 'title'")
        boards.append(board)
    return boards


def _folder_uid(title: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", title.lower()).strip("-")
    return (slug or "hazard-gateway")[:40]


def _grafana_api(url: str, token: str, timeout: float) -> Any:
    try:
        from grafana_client import GrafanaApi  # noqa: PLC0415 - optional extra, see INSTALL_HINT
    except ImportError as exc:
        raise DashboardsError(INSTALL_HINT) from exc
    return GrafanaApi.from_url(url, credential=token, timeout=timeout)


def _ensure_folder(api: Any, title: str) -> str:
    for folder in api.folder.get_all_folders():
        if folder.get("title") == title:
            return str(folder["uid"])
    created = api.folder.create_folder(title, uid=_folder_uid(title))
    log.info("created Grafana folder %r", title)
    return str(created["uid"])


def _check_datasource(api: Any, url: str) -> None:
    from grafana_client.client import GrafanaClientError  # noqa: PLC0415

    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            log.warning(
                "Grafana at %s has no datasource with uid %r: the boards will show no data "
                "until one exists (see dashboards/provisioning/datasources/influxdb.yaml)",
                url,
                DATASOURCE_UID,
            )
            return
        raise


def push_dashboards(
    url: str,
    token: str,
    folder: str | None,
    *,
    boards_dir: str | Path | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """Create or overwrite every board in Grafana at ``url``; return their uids in order.

    ``token`` is a Grafana service-account token (never logged). ``folder`` is the title of the
    folder to put them in (created when missing); None puts them in the General folder.
    Raises :class:`DashboardsError` with Grafana's answer when something is refused.
    """
    boards = load_boards(boards_dir)
    api = _grafana_api(url, token, timeout)
    from grafana_client.client import GrafanaException  # noqa: PLC0415

    try:
        _check_datasource(api, url)
        folder_uid = _ensure_folder(api, folder) if folder else None
    except (GrafanaException, OSError) as exc:  # niquests' connection errors are OSErrors
        raise DashboardsError(f"Grafana at {url}: {_reason(exc)}") from exc
    pushed: list[str] = []
    for board in boards:
        body = {k: v for k, v in board.items() if k != "id"}
        payload: dict[str, Any] = {
            "dashboard": body,
            "overwrite": True,
            "message": "hazardgw dashboards push",
        }
        if folder_uid is not None:
            payload["folderUid"] = folder_uid
        try:
            api.dashboard.update_dashboard(payload)
        except (GrafanaException, OSError) as exc:
            raise DashboardsError(
                f"Grafana at {url} refused board {board['uid']!r} ({board['title']}): "
                f"{_reason(exc)}"
            ) from exc
        log.info("pushed board %s (%s)", board["uid"], board["title"])
        pushed.append(str(board["uid"]))
    return pushed


def _reason(exc: Any) -> str:
    status = getattr(exc, "status_code", None)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if status == 401:
        return f"{text} (check the token: a service-account token with the Editor role)"
    if status == 403:
        return f"{text} (the token's role may not create folders or dashboards)"
    return text
