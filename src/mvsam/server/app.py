"""HTTP API and page of ``mvsam serve`` (FastAPI). The routes translate; :class:`Workspace` does the work.

Heavy routes are plain ``def`` functions, which FastAPI runs in its thread pool, so SAM never blocks the
event loop; changes queue on the workspace's inference lock. Errors are JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import importlib.util
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mvsam.server.export import ExportObject, export_zip, ply_bytes
from mvsam.server.security import AccessGuard, allowed_hosts, inside
from mvsam.server.state import PromptSpec
from mvsam.server.workspace import LiveObject, NotReady, UnknownObject, Workspace

STATIC_DIR = Path(__file__).parent / "static"
NO_STORE = {"Cache-Control": "no-store"}
MAX_PROMPTS = 64  # prompts in one step


class PromptBody(BaseModel):
    """``{"view", "x", "y", "label"}`` (a click) or ``{"view", "box": [x0, y0, x1, y1]}``."""

    model_config = ConfigDict(extra="forbid")
    view: StrictInt
    x: float | None = None
    y: float | None = None
    label: Literal[0, 1] | None = None
    box: list[float] | None = Field(default=None, min_length=4, max_length=4)

    def spec(self) -> PromptSpec:
        box = None if self.box is None else tuple(self.box)
        return PromptSpec(view=self.view, x=self.x, y=self.y, label=self.label, box=box)


class PromptsBody(BaseModel):
    """``{"prompts": [prompt, ...]}``: several prompts given as one step (like the CLI's repeated flags)."""

    model_config = ConfigDict(extra="forbid")
    prompts: list[PromptBody] = Field(min_length=1, max_length=MAX_PROMPTS)


def parse_prompts(payload: Any) -> list[PromptSpec]:
    """The request body of ``POST /api/objects/{id}/prompts`` as prompt specs (ValueError when invalid)."""
    try:
        if isinstance(payload, dict) and "prompts" in payload:
            return [prompt.spec() for prompt in PromptsBody.model_validate(payload).prompts]
        return [PromptBody.model_validate(payload).spec()]
    except ValidationError as error:
        raise ValueError(_validation_message(error.errors())) from None


def _validation_message(errors: list[dict]) -> str:
    parts = []
    for item in errors:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return "; ".join(parts) or "invalid request"


class ObjectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _png(image: np.ndarray) -> Response:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    ok, data = cv2.imencode(".png", image)
    return Response(data.tobytes(), media_type="image/png", headers=NO_STORE)


def auto_available() -> bool:
    """Whether ``mvsam.segment.auto`` (the automatic "everything" mode) is installed."""
    try:
        return importlib.util.find_spec("mvsam.segment.auto") is not None
    except ImportError:
        return False


def _describe(workspace: Workspace, obj: LiveObject) -> dict:
    revision = obj.current
    visible = []
    if not revision.empty:
        visible = [i for i in range(len(workspace.scene.views)) if workspace.work_mask(obj, i).any()]
    return {
        "id": obj.id,
        "name": obj.name,
        "color": "#{:02x}{:02x}{:02x}".format(*obj.color),
        "prompts": [spec.to_json() for step in revision.steps for spec in step],
        "steps": len(revision.steps),
        "can_undo": bool(obj.undo or revision.steps),
        "can_redo": bool(obj.redo),
        "tracked": revision.tracked,
        "version": obj.version,
        "visible_views": visible,
    }


def create_app(workspace: Workspace, host: str = "127.0.0.1", token: str | None = None) -> FastAPI:
    """The app for one workspace; preparation starts in a background thread when the app starts.

    ``host`` is the address the server binds (it decides the accepted Host headers); ``token``, when
    given, is required on every request.
    """

    @asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=workspace.prepare, name="mvsam-prepare", daemon=True).start()
        yield
        workspace.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(AccessGuard, token=token)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(host))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        return _error(400, _validation_message(error.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return _error(error.status_code, str(error.detail))

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, error: NotReady):
        return _error(409, str(error))

    @app.exception_handler(UnknownObject)
    async def unknown_object(request: Request, error: UnknownObject):
        return _error(404, error.args[0])

    @app.exception_handler(IndexError)
    async def unknown_view(request: Request, error: IndexError):
        return _error(404, str(error))

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, error: ValueError):
        return _error(400, str(error))

    @app.get("/")
    def page():
        return FileResponse(STATIC_DIR / "index.html", headers=NO_STORE)

    @app.get("/api/status")
    def status():
        progress, task = workspace.progress, workspace.task
        return {
            "ready": progress.ready,
            "stage": progress.stage,
            "progress": progress.progress,
            "stages_done": progress.stages_done,
            "error": progress.error,
            "notes": workspace.notes,
            "scene": None if workspace.scene is None else str(workspace.scene.root.name),
            "auto": auto_available() and not workspace.video,
            "mode": None if workspace.video is None else ("video" if workspace.video else "multiview"),
            "task": None if task is None else {"name": task.stage, "progress": task.progress},
        }

    @app.get("/api/views")
    def views():
        scene = workspace.require_scene()
        return [
            {"index": i, "name": v.name, "width": v.width, "height": v.height}
            for i, v in enumerate(scene.views)
        ]

    @app.get("/api/views/{index}/image")
    def view_image(index: int):
        scene = workspace.require_scene()
        path = scene.views[workspace.view_index(index)].image_path
        if not inside(path, [scene.root if scene.root.is_dir() else scene.root.parent, scene.cache_dir]):
            return _error(403, f"view {index}'s image lies outside the scene folder; not served")
        return FileResponse(path)

    @app.get("/api/views/{index}/thumb")
    def view_thumb(index: int):
        return Response(workspace.thumbnail(workspace.view_index(index)), media_type="image/jpeg")

    @app.get("/api/views/{index}/overlay.png")
    def view_overlay(index: int, full: bool = False):
        return _png(workspace.overlay(workspace.view_index(index), full))

    @app.get("/api/objects")
    def list_objects():
        workspace.require_ready()
        return [_describe(workspace, obj) for obj in list(workspace.objects.values())]

    @app.post("/api/objects")
    def create_object(body: ObjectBody):
        obj = workspace.create_object(body.name)
        return {"id": obj.id, "name": obj.name, "color": _describe(workspace, obj)["color"]}

    @app.get("/api/objects/{object_id}")
    def get_object(object_id: int):
        return _describe(workspace, workspace.get(object_id))

    @app.patch("/api/objects/{object_id}")
    def rename_object(object_id: int, body: RenameBody):
        workspace.rename(object_id, body.name)
        return _describe(workspace, workspace.get(object_id))

    @app.delete("/api/objects/{object_id}")
    def delete_object(object_id: int):
        workspace.delete(object_id)
        return {"deleted": object_id}

    def _update(update) -> dict:
        return {"seconds": update.seconds, "views_changed": update.views_changed}

    @app.post("/api/objects/{object_id}/prompts")
    def add_prompt(object_id: int, payload: Annotated[Any, Body()]):
        return _update(workspace.add_prompts(object_id, parse_prompts(payload)))

    @app.post("/api/objects/{object_id}/undo")
    def undo(object_id: int):
        return _update(workspace.undo(object_id))

    @app.post("/api/objects/{object_id}/redo")
    def redo(object_id: int):
        return _update(workspace.redo(object_id))

    @app.post("/api/objects/{object_id}/clear")
    def clear(object_id: int):
        return _update(workspace.clear(object_id))

    @app.post("/api/objects/{object_id}/track")
    def track(object_id: int):
        return _update(workspace.track(object_id))

    @app.post("/api/auto")
    def everything():
        count, seconds = workspace.run_auto()
        return {"objects": count, "seconds": seconds}

    @app.get("/api/objects/{object_id}/masks/{index}.png")
    def mask_png(object_id: int, index: int):
        obj = workspace.get(object_id)
        mask = workspace.full_masks(obj, [workspace.view_index(index)])[0]
        return _png(mask.astype(np.uint8) * 255)

    @app.get("/api/objects/{object_id}/points.ply")
    def object_ply(object_id: int):
        xyz, rgb = workspace.object_points(workspace.get(object_id))
        return Response(ply_bytes(xyz, rgb), media_type="application/octet-stream", headers=NO_STORE)

    @app.get("/api/scene/cameras")
    def cameras():
        """Per view: ``world_from_cam`` (4x4, OpenCV axes) or null, and its median depth (3D panel)."""
        workspace.require_ready()
        records = []
        for index, view in enumerate(workspace.scene.views):
            pose = None if view.camera is None else view.camera.world_from_cam.tolist()
            known = None if view.depth is None else view.depth[view.depth > 0]
            depth = float(np.median(known)) if known is not None and known.size else None
            records.append({"index": index, "world_from_cam": pose, "median_depth": depth})
        return records

    @app.get("/api/scene/points.ply")
    def scene_ply():
        xyz, rgb = workspace.scene_points()
        return Response(ply_bytes(xyz, rgb), media_type="application/octet-stream")

    @app.get("/api/export.zip")
    def export():
        workspace.require_ready()
        views = list(range(len(workspace.scene.views)))
        objects = []
        for obj in list(workspace.objects.values()):
            xyz, rgb = workspace.object_points(obj)
            objects.append(
                ExportObject(obj.id, obj.name, obj.color, workspace.full_masks(obj, views), xyz, rgb)
            )
        data = export_zip(workspace.scene, objects)
        name = f"mvsam_{workspace.scene.root.stem or 'scene'}.zip"
        headers = {"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE}
        return Response(data, media_type="application/zip", headers=headers)

    return app
