"""What a user gives the segmenter: clicks, boxes and masks on named views, and their CLI spellings.

A prompt names its view by file name, stem or 0-based index (resolved later against a scene with
``Scene.view_index``; names first). The CLI strings are comma-separated ``key=value`` lists, the same for
every command (``frame=`` is a synonym of ``view=``): ``view=000000.jpg,x=800,y=500,label=1``,
``view=3,x0=10,y0=20,x1=300,y1=400``, ``view=0,path=mask.png[,object=2]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvsam.errors import InputError
from mvsam.io.images import read_mask_png


@dataclass
class Click:
    """One click: (x, y) pixels of the view's image; ``positive`` = on the object."""

    view: str | int
    x: float
    y: float
    positive: bool = True


@dataclass
class BoxPrompt:
    """A box around the object: (x0, y0, x1, y1) pixels of the view's image."""

    view: str | int
    x0: float
    y0: float
    x1: float
    y1: float

    def as_array(self) -> np.ndarray:
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)


@dataclass
class MaskPrompt:
    """A binary mask of the object on one view: HxW bool at the view's image size."""

    view: str | int
    mask: np.ndarray


@dataclass
class ViewPrompts:
    """Everything the user gave on one view (resolved to its index)."""

    view: int
    points: np.ndarray  # Nx2 float64, (x, y) pixels; N may be 0
    labels: np.ndarray  # N int64, 1 = object, 0 = background
    box: np.ndarray | None = None  # 4 float64 (x0, y0, x1, y1)
    mask: np.ndarray | None = None  # HxW bool at the image size

    @property
    def has_positive(self) -> bool:
        """Whether this view says where the object is (a positive click, a box or a non-empty mask)."""
        return bool(np.any(self.labels == 1)) or self.box is not None or self.mask is not None


UserPrompt = Click | BoxPrompt | MaskPrompt


VIEW_KEYS = ("view", "frame")  # the same thing: a view of a scene is a frame of a video
_INTEGER_KEYS = ("label", "object")


def _fields(text: str, kind: str, required: Sequence[str], optional: Sequence[str] = ()) -> dict[str, str]:
    """Split ``key=value,key=value`` and check the keys; InputError shows the expected spelling.

    ``frame=`` is accepted wherever ``view=`` is (and stored as ``view``). Values of the keys present are
    checked before missing keys are reported, so ``x=abc`` is named rather than a missing ``y``.
    """
    example = ",".join(f"{key}=..." for key in required)
    values: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        key = "view" if key == "frame" else key
        if not sep or not value.strip():
            raise InputError(f"bad {kind} {text!r}: {part!r} is not key=value (expected {example!r})")
        if key not in (*required, *optional):
            raise InputError(
                f"bad {kind} {text!r}: unknown key {key!r} (keys: {', '.join((*required, *optional))}; "
                "frame= is the same as view=)"
            )
        if key in values:
            raise InputError(f"bad {kind} {text!r}: {key!r} given twice (view= and frame= are one key)")
        values[key] = value.strip()
    for key in values:
        if key not in ("view", "path"):
            _number(values, key, text, kind)
    missing = [key for key in required if key not in values]
    if missing:
        raise InputError(f"bad {kind} {text!r}: missing {', '.join(missing)} (expected {example!r})")
    return values


def _number(values: dict[str, str], key: str, text: str, kind: str) -> float:
    try:
        number = float(values[key])
    except ValueError:
        raise InputError(f"bad {kind} {text!r}: {key}={values[key]!r} is not a number") from None
    if not np.isfinite(number):
        raise InputError(f"bad {kind} {text!r}: {key} must be finite")
    if key in _INTEGER_KEYS and number != int(number):
        raise InputError(f"bad {kind} {text!r}: {key} must be an integer")
    return number


def parse_click(text: str) -> Click:
    """``view=NAME|INDEX,x=X,y=Y[,label=1|0]`` -> Click (label defaults to 1, positive).

    The view stays a string: ``Scene.view_index`` tries names and stems before indices, so ``view=0007``
    means the image ``0007.jpg`` when there is one.
    """
    values = _fields(text, "click", ("view", "x", "y"), ("label",))
    label = values.get("label", "1")
    if label not in ("0", "1"):
        raise InputError(f"bad click {text!r}: label must be 1 (object) or 0 (background), got {label!r}")
    return Click(
        view=values["view"],
        x=_number(values, "x", text, "click"),
        y=_number(values, "y", text, "click"),
        positive=label == "1",
    )


def parse_box(text: str) -> BoxPrompt:
    """``view=NAME|INDEX,x0=..,y0=..,x1=..,y1=..`` -> BoxPrompt (x1 > x0, y1 > y0)."""
    values = _fields(text, "box", ("view", "x0", "y0", "x1", "y1"))
    box = BoxPrompt(values["view"], *(_number(values, k, text, "box") for k in ("x0", "y0", "x1", "y1")))
    if box.x1 <= box.x0 or box.y1 <= box.y0:
        raise InputError(f"bad box {text!r}: need x1 > x0 and y1 > y0")
    return box


def parse_point_or_box(text: str) -> Click | BoxPrompt:
    """A click, or a box when the text has ``x0``/``y0``/``x1``/``y1`` keys (``--prompt`` takes both)."""
    keys = {part.partition("=")[0].strip().lower() for part in text.split(",")}
    return parse_box(text) if keys & {"x0", "y0", "x1", "y1"} else parse_click(text)


def parse_mask_prompt(text: str, base: Path | None = None) -> MaskPrompt:
    """``view=NAME|INDEX,path=mask.png[,object=ID]`` -> MaskPrompt (any non-zero pixel is the object).

    A label image with several ids (DAVIS/VOC palette PNG) needs ``object=ID``. A relative path is taken
    relative to ``base`` (default: the working folder).
    """
    values = _fields(text, "mask prompt", ("view", "path"), ("object",))
    path = Path(values["path"]).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    object_id = int(_number(values, "object", text, "mask prompt")) if "object" in values else None
    return MaskPrompt(view=values["view"], mask=read_mask_png(path, object_id))


def group_prompts(
    prompts: Sequence[UserPrompt], resolve_view, image_sizes: Sequence[tuple[int, int]]
) -> dict[int, ViewPrompts]:
    """Resolve views and gather prompts per view index, checking them against the images.

    ``resolve_view(key) -> int`` maps a view name or index (``Scene.view_index``); ``image_sizes`` holds
    (width, height) per view. Raises ValueError for a point outside its image, a second box or mask on
    one view, or a mask of the wrong size.
    """
    points: dict[int, list[tuple[float, float]]] = {}
    labels: dict[int, list[int]] = {}
    boxes: dict[int, np.ndarray] = {}
    masks: dict[int, np.ndarray] = {}
    for prompt in prompts:
        index = resolve_view(prompt.view)
        width, height = image_sizes[index]
        if isinstance(prompt, Click):
            if not (-0.5 <= prompt.x <= width - 0.5 and -0.5 <= prompt.y <= height - 0.5):
                raise InputError(
                    f"click ({prompt.x:g}, {prompt.y:g}) on view {prompt.view!r} is outside its "
                    f"{width}x{height} image (x in [0, {width - 1}], y in [0, {height - 1}])"
                )
            points.setdefault(index, []).append((prompt.x, prompt.y))
            labels.setdefault(index, []).append(int(prompt.positive))
        elif isinstance(prompt, BoxPrompt):
            if index in boxes:
                raise InputError(f"view {prompt.view!r} has two boxes; give at most one box per view")
            box = prompt.as_array()
            if box[2] < 0 or box[3] < 0 or box[0] > width - 1 or box[1] > height - 1:
                raise InputError(
                    f"box {box.tolist()} on view {prompt.view!r} lies outside its {width}x{height} image"
                )
            boxes[index] = np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])
        elif isinstance(prompt, MaskPrompt):
            mask = np.asarray(prompt.mask)
            if mask.dtype != bool:
                raise InputError(
                    f"mask prompt on view {prompt.view!r} must be a bool array, got {mask.dtype}"
                )
            if mask.shape != (height, width):
                raise InputError(
                    f"mask prompt on view {prompt.view!r} is {mask.shape[1]}x{mask.shape[0]}, the image is "
                    f"{width}x{height}"
                )
            if not mask.any():
                raise InputError(f"mask prompt on view {prompt.view!r} is empty; it must mark the object")
            if index in masks:
                raise InputError(f"view {prompt.view!r} has two mask prompts; give at most one per view")
            masks[index] = mask
        else:
            raise InputError(f"unknown prompt type {type(prompt).__name__}")
    grouped = {}
    for index in sorted({*points, *boxes, *masks}):
        grouped[index] = ViewPrompts(
            view=index,
            points=np.array(points.get(index, []), dtype=np.float64).reshape(-1, 2),
            labels=np.array(labels.get(index, []), dtype=np.int64),
            box=boxes.get(index),
            mask=masks.get(index),
        )
    return grouped
