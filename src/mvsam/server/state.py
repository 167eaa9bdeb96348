"""What the web app remembers: objects, their prompts, and the file they are saved to.

A prompt from the page is a :class:`PromptSpec` (one click or one box on one view, full-resolution pixels,
pixel (0, 0) = centre of the top-left pixel). An object's masks are defined by its ``steps``: the prompts
of each user action in order, replayed as ``Segmenter.segment(steps[0])`` then ``add_prompts(step)`` for
the rest, so a restart (or an undo past the kept snapshots) rebuilds exactly what the user saw.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from mvsam.cache import atomic_write_bytes
from mvsam.errors import InputError
from mvsam.segment.prompts import BoxPrompt, Click

STATE_VERSION = 1
MAX_NAME_LENGTH = 80


@dataclass(frozen=True)
class PromptSpec:
    """One click (``x``, ``y``, ``label`` 1 = object / 0 = background) or one box on view ``view``."""

    view: int
    x: float | None = None
    y: float | None = None
    label: int | None = None
    box: tuple[float, float, float, float] | None = None

    def check(self, sizes: list[tuple[int, int]]) -> None:
        """ValueError unless the view exists and the point or box lies inside its image.

        ``sizes`` holds (width, height) per view; valid pixel centres span [-0.5, size - 0.5].
        """
        if not 0 <= self.view < len(sizes):
            raise ValueError(f"view {self.view} is out of range 0..{len(sizes) - 1}")
        width, height = sizes[self.view]
        if self.box is None:
            if self.x is None or self.y is None or self.label not in (0, 1):
                raise ValueError("a click needs x, y and label 1 (object) or 0 (background)")
            coordinates = [(self.x, width), (self.y, height)]
        else:
            if self.x is not None or self.y is not None or self.label is not None:
                raise ValueError("give either a click (x, y, label) or a box, not both")
            x0, y0, x1, y1 = self.box
            if not (x1 > x0 and y1 > y0):
                raise ValueError(f"box {list(self.box)} needs x1 > x0 and y1 > y0")
            coordinates = [(x0, width), (x1, width), (y0, height), (y1, height)]
        for value, size in coordinates:
            if not (math.isfinite(value) and -0.5 <= value <= size - 0.5):
                raise ValueError(
                    f"point ({value:g}) is outside view {self.view}'s {width}x{height} image "
                    f"(x in [-0.5, {width - 0.5}], y in [-0.5, {height - 0.5}])"
                )

    def to_prompt(self) -> Click | BoxPrompt:
        if self.box is not None:
            return BoxPrompt(self.view, *self.box)
        return Click(view=self.view, x=self.x, y=self.y, positive=self.label == 1)

    def to_json(self) -> dict:
        if self.box is not None:
            return {"view": self.view, "box": list(self.box)}
        return {"view": self.view, "x": self.x, "y": self.y, "label": self.label}

    @classmethod
    def from_json(cls, data: dict) -> PromptSpec:
        if "box" in data:
            return cls(view=int(data["view"]), box=tuple(float(v) for v in data["box"]))
        return cls(view=int(data["view"]), x=float(data["x"]), y=float(data["y"]), label=int(data["label"]))


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"an object name must have 1 to {MAX_NAME_LENGTH} characters")
    return name


@dataclass
class SavedObject:
    """An object as saved: id (stable, user-facing), name, colour and the prompt steps."""

    id: int
    name: str
    color: tuple[int, int, int]
    steps: list[list[PromptSpec]] = field(default_factory=list)
    tracked: bool = False  # a video object tracked through every frame


@dataclass
class SavedState:
    scene: str
    views: list[str]  # view names, to refuse a state saved for another scene
    next_id: int
    objects: list[SavedObject]


def save_state(path: Path, state: SavedState) -> None:
    """Write the state as JSON atomically (a crash leaves the previous file whole)."""
    data = {
        "version": STATE_VERSION,
        "scene": state.scene,
        "views": state.views,
        "next_id": state.next_id,
        "objects": [
            {
                "id": obj.id,
                "name": obj.name,
                "color": list(obj.color),
                "steps": [[spec.to_json() for spec in step] for step in obj.steps],
                "tracked": obj.tracked,
            }
            for obj in state.objects
        ],
    }
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def load_state(path: Path, view_names: list[str]) -> SavedState | None:
    """The saved state, or None when there is none; ValueError when it belongs to other views or is bad."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
        if data["views"] != view_names:
            raise ValueError("it was saved for a scene with other views")
        objects = [
            SavedObject(
                id=int(obj["id"]),
                name=check_name(str(obj["name"])),
                color=tuple(int(c) for c in obj["color"]),
                steps=[[PromptSpec.from_json(spec) for spec in step] for step in obj["steps"]],
                tracked=bool(obj.get("tracked", False)),
            )
            for obj in data["objects"]
        ]
        return SavedState(str(data["scene"]), list(data["views"]), int(data["next_id"]), objects)
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: unreadable saved state ({error}); move it away to start afresh") from None
    except ValueError as error:
        raise InputError(f"{path}: {error}; use another --out or move the file away") from None
