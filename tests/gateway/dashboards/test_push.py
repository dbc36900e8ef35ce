"""``hazardgw dashboards push`` against a recording stand-in for Grafana's HTTP API.

grafana-client is an optional extra kept out of the gateway's environment (it replaces urllib3),
so the upload runs in a separate venv: ``$HAZARD_GRAFANA_PYTHON`` or ``.venv-grafana/bin/python``
with ``pip install -e '.[grafana]'``. Without one, those tests are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.dashboards import DATASOURCE_UID, DashboardsError, load_boards, push_dashboards
from tests.harness.paths import ROOT

TOKEN = "glsa_test-token-0123456789"


def grafana_python() -> str | None:
    """A Python interpreter that can import grafana_client (and the gateway), or None."""
    candidates = [os.environ.get("HAZARD_GRAFANA_PYTHON"), str(ROOT / ".venv-grafana/bin/python")]
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import grafana_client, gateway.dashboards"],
            capture_output=True,
            env=_env(),
            check=False,
            timeout=60,
        )
        if probe.returncode == 0:
            return python
    return None


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@dataclass
class FakeGrafana:
    """Records requests; answers like Grafana 10/11 for folders, datasources and dashboards."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, str], Any]] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)
    datasources: set[str] = field(default_factory=lambda: {DATASOURCE_UID})
    refuse_uid: str | None = None

    def posts(self, path: str) -> list[Any]:
        return [body for method, p, _, body in self.requests if method == "POST" and p == path]


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body: Any) -> None:
            state.requests.append((self.command, self.path, dict(self.headers.items()), body))

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._reply(401, {"message": "invalid API key"})
                return False
            return True

        def do_GET(self) -> None:
            self._record(None)
            if not self._authorized():
                return
            if self.path.split("?")[0] == "/api/folders":
                self._reply(200, state.folders)
            elif self.path.startswith("/api/datasources/uid/"):
                uid = self.path.rsplit("/", 1)[1]
                if uid in state.datasources:
                    self._reply(200, {"uid": uid, "type": "influxdb"})
                else:
                    self._reply(404, {"message": "Data source not found"})
            else:
                self._reply(404, {"message": "Not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            self._record(body)
            if not self._authorized():
                return
            if self.path == "/api/folders":
                folder = {"id": len(state.folders) + 1, "uid": body["uid"], "title": body["title"]}
                state.folders.append(folder)
                self._reply(200, folder)
            elif self.path == "/api/dashboards/db":
                uid = body["dashboard"]["uid"]
                if uid == state.refuse_uid:
                    self._reply(412, {"message": "version-mismatch", "status": "version-mismatch"})
                    return
                self._reply(
                    200,
                    {"id": 1, "uid": uid, "url": f"/d/{uid}/x", "status": "success", "version": 1},
                )
            else:
                self._reply(404, {"message": "Not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-grafana", daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_in_grafana_venv(python: str, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        env=_env(**env),
        cwd=ROOT,
        check=False,
        timeout=120,
    )


PUSH = (
    "import json, os, sys\n"
    "from gateway.dashboards import push_dashboards, DashboardsError\n"
    "try:\n"
    "    uids = push_dashboards(sys.argv[1] if len(sys.argv) > 1 else os.environ['GF_URL'],\n"
    "                           os.environ['GF_TOKEN'], os.environ.get('GF_FOLDER') or None)\n"
    "except DashboardsError as exc:\n"
    "    print('ERROR', exc)\n"
    "    sys.exit(3)\n"
    "print(json.dumps(uids))\n"
)


@pytest.fixture(scope="module")
def gpython() -> str:
    python = grafana_python()
    if python is None:
        pytest.skip(
            "grafana-client is not importable in a separate venv: create one with "
            "'python -m venv .venv-grafana && .venv-grafana/bin/pip install -e .[grafana]' "
            "or set HAZARD_GRAFANA_PYTHON"
        )
    return python


def test_push_uploads_every_board_into_a_new_folder(
    gpython: str, fake_grafana: FakeGrafana
) -> None:
    result = run_in_grafana_venv(
        gpython, PUSH, GF_URL=fake_grafana.url, GF_TOKEN=TOKEN, GF_FOLDER="Hazard gateway"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    boards = load_boards()
    assert json.loads(result.stdout) == [b["uid"] for b in boards]
    [folder] = fake_grafana.posts("/api/folders")
    assert folder == {"title": "Hazard gateway", "uid": "hazard-gateway"}
    posted = fake_grafana.posts("/api/dashboards/db")
    assert [p["dashboard"]["uid"] for p in posted] == [b["uid"] for b in boards]
    for payload, board in zip(posted, boards, strict=True):
        assert payload["overwrite"] is True
        assert payload["folderUid"] == "hazard-gateway"
        assert payload["dashboard"] == {k: v for k, v in board.items() if k != "id"}
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _, _, h, _ in fake_grafana.requests)
    assert TOKEN not in result.stderr + result.stdout


def test_push_reuses_an_existing_folder_and_warns_without_datasource(
    gpython: str, fake_grafana: FakeGrafana
) -> None:
    fake_grafana.folders.append({"id": 9, "uid": "ops-boards", "title": "Control room"})
    fake_grafana.datasources.clear()
    code = "import logging; logging.basicConfig(level=logging.INFO)\n" + PUSH
    result = run_in_grafana_venv(
        gpython, code, GF_URL=fake_grafana.url, GF_TOKEN=TOKEN, GF_FOLDER="Control room"
    )
    assert result.returncode == 0, result.stderr
    assert fake_grafana.posts("/api/folders") == []
    assert {p["folderUid"] for p in fake_grafana.posts("/api/dashboards/db")} == {"ops-boards"}
    assert f"no datasource with uid '{DATASOURCE_UID}'" in result.stderr


def test_push_without_folder_goes_to_general(gpython: str, fake_grafana: FakeGrafana) -> None:
    result = run_in_grafana_venv(gpython, PUSH, GF_URL=fake_grafana.url, GF_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    assert fake_grafana.posts("/api/folders") == []
    assert all("folderUid" not in p for p in fake_grafana.posts("/api/dashboards/db"))


def test_push_reports_refusals_clearly(gpython: str, fake_grafana: FakeGrafana) -> None:
    bad_token = run_in_grafana_venv(gpython, PUSH, GF_URL=fake_grafana.url, GF_TOKEN="wrong")
    assert bad_token.returncode == 3
    assert "check the token" in bad_token.stdout
    fake_grafana.refuse_uid = "hazard-gas"
    refused = run_in_grafana_venv(gpython, PUSH, GF_URL=fake_grafana.url, GF_TOKEN=TOKEN)
    assert refused.returncode == 3
    assert "refused board 'hazard-gas'" in refused.stdout
    assert "version-mismatch" in refused.stdout
    unreachable = run_in_grafana_venv(gpython, PUSH, GF_URL="http://127.0.0.1:9", GF_TOKEN=TOKEN)
    assert unreachable.returncode == 3
    assert "ERROR Grafana at http://127.0.0.1:9" in unreachable.stdout


def test_cli_push(gpython: str, fake_grafana: FakeGrafana) -> None:
    result = subprocess.run(
        [gpython, "-m", "hazardgw", "dashboards", "push", "--url", fake_grafana.url,
         "--token-env", "GF_TOKEN"],
        capture_output=True, text=True, env=_env(GF_TOKEN=TOKEN), cwd=ROOT, check=False,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(fake_grafana.posts("/api/dashboards/db")) == len(load_boards())
    assert "hazard-gas" in result.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("grafana_client") is not None,
    reason="grafana-client is installed here; the gateway's own environment should not have it",
)
def test_missing_extra_is_a_clear_error() -> None:
    with pytest.raises(DashboardsError) as info:
        push_dashboards("http://127.0.0.1:9", TOKEN, None)
    message = str(info.value)
    assert "pip install 'hazard-gateway[grafana]'" in message
    assert ".venv-grafana" in message
    assert TOKEN not in message


def test_boards_are_found_and_a_missing_dir_is_a_clear_error(tmp_path: Path) -> None:
    assert len(load_boards()) == 7
    with pytest.raises(DashboardsError, match="no dashboard JSON files found"):
        load_boards(tmp_path)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DashboardsError, match="needs a 'uid' and a 'title'"):
        load_boards(tmp_path)
