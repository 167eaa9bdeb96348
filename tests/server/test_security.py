"""Security of the web app: Host check, token, same-origin writes, no CORS, paths, sizes, bad input."""

from __future__ import annotations

import http.client
import json
import shutil

import pytest
from fastapi.testclient import TestClient

from mvsam.demo.run import SCENE_DIR
from mvsam.server import create_app
from mvsam.server.app import auto_available

from .conftest import BASE_URL, LiveServer, wait_ready

SECRET_NAME = "secret.txt"


def _raw_get(server: LiveServer, path: str, host: str | None = None) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (no client-side normalisation of .. or %2f)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.port}")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def symlinked_scene(tmp_path):
    """A copy of the demo scene whose view 3 is a symlink to an image outside the scene folder."""
    scene = tmp_path / "scene"
    shutil.copytree(SCENE_DIR, scene)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / SECRET_NAME).write_text("do not serve")
    shutil.copy(scene / "color" / "3.jpg", outside / "private.jpg")
    (scene / "color" / "3.jpg").unlink()
    (scene / "color" / "3.jpg").symlink_to(outside / "private.jpg")
    return scene


def test_paths_never_leave_the_scene_or_static_folder(make_workspace, symlinked_scene, tmp_path):
    with LiveServer(create_app(make_workspace(tmp_path / "out", symlinked_scene))) as server:
        status, _ = _raw_get(server, "/api/status")
        assert status == 200
        for _ in range(600):
            if _raw_get(server, "/api/views")[0] == 200:
                break
            import time

            time.sleep(0.1)
        assert _raw_get(server, "/api/views/0/image")[0] == 200
        status, body = _raw_get(server, "/api/views/3/image")  # the symlink out of the scene
        assert status == 403 and json.loads(body)["error"]
        assert _raw_get(server, "/static/app.js")[0] == 200
        attempts = [
            "/static/../app.py",
            "/static/..%2fapp.py",
            "/static/..%2F..%2Fserver%2Fapp.py",
            "/static/%2e%2e/%2e%2e/pyproject.toml",
            "/static//etc/passwd",
            "/static/%2Fetc%2Fpasswd",
            "/static/..\\app.py",
            f"/static/../../../../../../../..{tmp_path}/outside/{SECRET_NAME}",
            f"/static/{tmp_path}/outside/{SECRET_NAME}",
            "/api/views/..%2F..%2Fetc%2Fpasswd/image",
            "/api/views/-1/image",
            "/api/views/8/image",
            "/api/views/0%2F..%2F1/image",
            "/../../etc/passwd",
        ]
        for path in attempts:
            status, body = _raw_get(server, path)
            assert status in (400, 404), (path, status)
            assert b"do not serve" not in body and b"root:" not in body and b"import" not in body, path
        # DNS rebinding: a page on another name resolving to 127.0.0.1 gets nothing
        status, body = _raw_get(server, "/api/views", host="attacker.example:8765")
        assert status == 400 and b"0.jpg" not in body


def test_bad_requests_change_nothing(make_workspace, tmp_path):
    with TestClient(create_app(make_workspace(tmp_path / "out")), base_url=BASE_URL) as client:
        wait_ready(client)
        assert client.post("/api/objects", json={}).json()["id"] == 1
        assert (
            client.post(
                "/api/objects/1/prompts", json={"view": 0, "x": 265, "y": 267, "label": 1}
            ).status_code
            == 200
        )
        before = client.get("/api/objects").json()
        state = (tmp_path / "out" / "state.json").read_text()
        bad = [
            ({"view": 8, "x": 10, "y": 10, "label": 1}, 400, "out of range"),
            ({"view": -1, "x": 10, "y": 10, "label": 1}, 400, "out of range"),
            ({"view": 0, "x": 640, "y": 10, "label": 1}, 400, "outside"),
            ({"view": 0, "x": 10, "y": -3, "label": 1}, 400, "outside"),
            ({"view": 0, "x": 10, "y": 10, "label": 2}, 400, "label"),
            ({"view": 0, "x": 10, "y": 10}, 400, "label"),
            ({"view": "0", "x": 10, "y": 10, "label": 1}, 400, "view"),
            ({"view": True, "x": 10, "y": 10, "label": 1}, 400, "view"),
            ({"view": 0, "x": 10, "y": 10, "label": 1, "extra": 1}, 400, "extra"),
            ({"view": 0, "box": [10, 10, 5, 20]}, 400, "x1 > x0"),
            ({"view": 0, "box": [10, 10, 20]}, 400, "box"),
            ({"view": 0, "box": [0, 0, 700, 20]}, 400, "outside"),
            ({"view": 0, "box": [1, 2, 3, 4], "x": 1, "y": 2, "label": 1}, 400, "not both"),
            ([1, 2], 400, ""),
            ({"prompts": []}, 400, "prompts"),
            ({"prompts": [{"view": 0, "x": 1, "y": 1, "label": 1}] * 65}, 400, "prompts"),
            (
                {
                    "prompts": [
                        {"view": 0, "x": 1, "y": 1, "label": 1},
                        {"view": 9, "x": 1, "y": 1, "label": 1},
                    ]
                },
                400,
                "range",
            ),
        ]
        for body, code, words in bad:
            response = client.post("/api/objects/1/prompts", json=body)
            assert response.status_code == code, (body, response.text)
            assert words in response.json()["error"], (body, response.json())
        malformed = client.post(
            "/api/objects/1/prompts",
            content=b'{"view": 0, "x":',
            headers={"Content-Type": "application/json"},
        )
        assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]
        nan = client.post(
            "/api/objects/1/prompts",
            content=b'{"view": 0, "x": NaN, "y": 1, "label": 1}',
            headers={"Content-Type": "application/json"},
        )
        assert nan.status_code == 400
        plain = client.post(
            "/api/objects/1/prompts", content=b"view=0", headers={"Content-Type": "text/plain"}
        )
        assert plain.status_code == 415
        huge = client.post(
            "/api/objects/1/prompts", json={"view": 0, "x": 1, "y": 1, "label": 1, "pad": "x" * 100_000}
        )
        assert huge.status_code == 413
        for method, path, code in [
            ("post", "/api/objects/99/prompts", 404),
            ("post", "/api/objects/99/undo", 404),
            ("delete", "/api/objects/99", 404),
            ("get", "/api/objects/99/masks/0.png", 404),
            ("get", "/api/objects/1/masks/8.png", 404),
            ("get", "/api/objects/1/masks/x.png", 400),
            ("get", "/api/objects/abc", 400),
            ("post", "/api/objects/1/redo", 400),
            ("get", "/api/nothing", 404),
        ]:
            kwargs = {"json": {"view": 0, "x": 1, "y": 1, "label": 1}} if path.endswith("prompts") else {}
            response = getattr(client, method)(path, **kwargs)
            assert response.status_code == code, (method, path, response.text)
            assert response.json()["error"]
        if not auto_available():
            assert client.get("/api/status").json()["auto"] is False  # the page hides "Everything"
            assert client.post("/api/auto").status_code == 400
        assert client.patch("/api/objects/1", json={"name": ""}).status_code == 400
        assert client.post("/api/objects", json={"name": "x" * 500}).status_code == 400
        # only negative clicks cannot start an object
        client.post("/api/objects", json={})
        only_negative = client.post("/api/objects/2/prompts", json={"view": 0, "x": 10, "y": 10, "label": 0})
        assert only_negative.status_code == 400 and "positive" in only_negative.json()["error"]
        client.delete("/api/objects/2")
        after = client.get("/api/objects").json()
        assert after == before
        assert (
            json.loads((tmp_path / "out" / "state.json").read_text())["objects"]
            == json.loads(state)["objects"]
        )

        # no CORS, and writes from another origin are refused
        response = client.get("/api/objects", headers={"Origin": "http://attacker.example"})
        assert "access-control-allow-origin" not in response.headers
        preflight = client.options(
            "/api/objects",
            headers={"Origin": "http://attacker.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        cross = client.post("/api/objects", json={}, headers={"Origin": "http://attacker.example"})
        assert cross.status_code == 403
        assert client.post("/api/objects", json={}, headers={"Origin": BASE_URL}).status_code == 200
        assert client.get("/api/status").headers["x-frame-options"] == "DENY"


def test_token_required_beyond_loopback(make_workspace, tmp_path):
    app = create_app(make_workspace(tmp_path / "out"), host="0.0.0.0", token="s3cret-token")
    with TestClient(app, base_url="http://192.168.1.20:8765") as client:
        for path in ("/", "/api/status", "/api/views", "/static/app.js", "/api/views/0/image"):
            response = client.get(path)
            assert response.status_code == 401, path
            assert "token" in response.json()["error"]
        assert client.get("/api/status?token=wrong").status_code == 401
        assert client.get("/api/status", headers={"x-mvsam-token": "wrong"}).status_code == 401
        assert client.get("/api/status", headers={"x-mvsam-token": "s3cret-token"}).status_code == 200
        opened = client.get("/?token=s3cret-token")
        assert opened.status_code == 200 and "mvsam_token=s3cret-token" in opened.headers["set-cookie"]
        assert "HttpOnly" in opened.headers["set-cookie"]
        assert client.get("/api/status").status_code == 200  # the cookie from the page's URL


def test_serve_command_warns_and_makes_a_token_beyond_loopback(monkeypatch, capsys):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    from mvsam.cli import main

    assert main(["serve", str(SCENE_DIR), "--port", "9001"]) == 0
    assert calls[-1] == {"host": "127.0.0.1", "port": 9001, "log_level": "warning"}
    out = capsys.readouterr().out
    assert "http://127.0.0.1:9001/" in out and "WARNING" not in out and "token" not in out
    assert main(["serve", str(SCENE_DIR), "--host", "0.0.0.0"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "?token=" in out and calls[-1]["host"] == "0.0.0.0"
    assert main(["serve", str(SCENE_DIR), "--port", "0"]) == 2
