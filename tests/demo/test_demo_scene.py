"""The bundled demo scene: files, exact geometry, cross-view consistency, suggested clicks."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mvsam.demo
from mvsam.scene import Camera

SCENE = Path(mvsam.demo.__file__).parent / "scene"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_demo_scene.py"
NUM_VIEWS = 8
WIDTH, HEIGHT = 640, 480
OBJECT_IDS = {1, 2, 3, 4}


@dataclass
class DemoView:
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float64 metres, 0 = no hit
    instance: np.ndarray  # HxW uint8
    camera: Camera


def load_matrix(path: Path) -> np.ndarray:
    return np.loadtxt(path).reshape(4, 4)


def load_view(index: int) -> DemoView:
    K = load_matrix(SCENE / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    with Image.open(SCENE / "depth" / f"{index}.png") as image:
        depth = np.asarray(image).astype(np.float64) / 1000.0
    return DemoView(
        rgb=np.asarray(Image.open(SCENE / "color" / f"{index}.jpg").convert("RGB")),
        depth=depth,
        instance=np.asarray(Image.open(SCENE / "instance" / f"{index}.png")),
        camera=Camera(
            K=K, world_from_cam=load_matrix(SCENE / "pose" / f"{index}.txt"), width=WIDTH, height=HEIGHT
        ),
    )


@dataclass
class Correspondence:
    """Pixels of view a that view b also sees (z-buffer test), and where they land in b."""

    rows_a: np.ndarray  # M int
    cols_a: np.ndarray  # M int
    rows_b: np.ndarray  # M int
    cols_b: np.ndarray  # M int


def covisible(a: DemoView, b: DemoView, tolerance: float = 0.01) -> Correspondence:
    """Back-project a's depth to world, project into b, keep pixels whose depth agrees with b's (metres)."""
    rows, cols = np.nonzero(a.depth > 0)
    world = a.camera.unproject(np.stack([cols, rows], axis=1), a.depth[rows, cols])
    xy, z = b.camera.project(world)
    cols_b, rows_b = np.round(xy[:, 0]).astype(int), np.round(xy[:, 1]).astype(int)
    inside = (z > 0) & (cols_b >= 0) & (cols_b < WIDTH) & (rows_b >= 0) & (rows_b < HEIGHT)
    rows, cols, rows_b, cols_b, z = rows[inside], cols[inside], rows_b[inside], cols_b[inside], z[inside]
    depth_b = b.depth[rows_b, cols_b]
    visible = (depth_b > 0) & (np.abs(depth_b - z) < tolerance + 0.01 * z)
    return Correspondence(rows[visible], cols[visible], rows_b[visible], cols_b[visible])


@pytest.fixture(scope="module")
def views() -> list[DemoView]:
    return [load_view(index) for index in range(NUM_VIEWS)]


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads((SCENE / "scene.json").read_text())


def test_files_present_with_consistent_sizes(metadata):
    assert metadata["num_views"] == NUM_VIEWS
    assert (SCENE / "README.md").is_file()
    for index in range(NUM_VIEWS):
        with Image.open(SCENE / "color" / f"{index}.jpg") as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (WIDTH, HEIGHT))
        with Image.open(SCENE / "depth" / f"{index}.png") as image:
            assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
            assert np.asarray(image).dtype == np.uint16
        with Image.open(SCENE / "instance" / f"{index}.png") as image:
            assert (image.format, image.mode, image.size) == ("PNG", "L", (WIDTH, HEIGHT))
        assert load_matrix(SCENE / "pose" / f"{index}.txt").shape == (4, 4)
    color_k = load_matrix(SCENE / "intrinsic" / "intrinsic_color.txt")
    np.testing.assert_allclose(color_k, load_matrix(SCENE / "intrinsic" / "intrinsic_depth.txt"))
    np.testing.assert_allclose(color_k[:3, :3], [[550, 0, 319.5], [0, 550, 239.5], [0, 0, 1]])
    total = sum(path.stat().st_size for path in SCENE.rglob("*") if path.is_file())
    assert total < 1.5e6, f"demo scene is {total / 1e6:.2f} MB"


def test_cameras_orbit_the_table_at_30_degrees(views):
    look_at = np.array([0.0, 0.0, 0.05])
    azimuths = []
    for view in views:
        offset = view.camera.center - look_at
        assert np.linalg.norm(offset) == pytest.approx(1.0, abs=1e-6)
        assert np.degrees(np.arcsin(offset[2])) == pytest.approx(30.0, abs=1e-6)
        # The optical axis (camera z) points at the look-at point; image "down" has a negative world z.
        np.testing.assert_allclose(view.camera.world_from_cam[:3, 2], -offset, atol=1e-6)
        assert view.camera.world_from_cam[2, 1] < 0
        azimuths.append(np.degrees(np.arctan2(offset[1], offset[0])))
    assert azimuths[-1] - azimuths[0] == pytest.approx(150.0, abs=1e-6)


def test_depth_lands_on_the_known_surfaces(views):
    """Back-projected depth lies on the table plane z = 0 and on the red sphere's surface."""
    view = views[0]
    sphere_rows, sphere_cols = np.nonzero(view.instance == 1)
    points = view.camera.unproject(
        np.stack([sphere_cols, sphere_rows], 1), view.depth[sphere_rows, sphere_cols]
    )
    radii = np.linalg.norm(points - [-0.17, 0.04, 0.09], axis=1)
    assert np.abs(radii - 0.09).max() < 0.002  # depth is rounded to 1 mm
    assert np.median(np.abs(radii - 0.09)) < 0.0005
    # The pixel at the bottom centre of view 0 sees the table top.
    row, col = HEIGHT - 40, WIDTH // 2
    assert view.instance[row, col] == 0
    point = view.camera.unproject(np.array([[col, row]]), view.depth[row, col : col + 1])[0]
    assert abs(point[2]) < 0.002 and abs(point[0]) < 0.5 and abs(point[1]) < 0.36


@pytest.mark.parametrize(("a", "b"), [(0, 3), (3, 7), (7, 0)])
def test_reprojected_instance_ids_agree(views, a, b):
    match = covisible(views[a], views[b])
    assert len(match.rows_a) > 0.2 * WIDTH * HEIGHT
    ids_a = views[a].instance[match.rows_a, match.cols_a]
    ids_b = views[b].instance[match.rows_b, match.cols_b]
    assert np.mean(ids_a == ids_b) >= 0.95
    on_objects = ids_a > 0
    assert set(np.unique(ids_a[on_objects])) == OBJECT_IDS  # every object is seen by both views
    assert on_objects.sum() > 0.2 * (views[a].instance > 0).sum()  # a wrong pose leaves ~10%
    assert np.mean(ids_a[on_objects] == ids_b[on_objects]) >= 0.95


def test_reprojected_colours_agree(views):
    """Lambertian shading is view-independent: co-visible pixels differ by noise, JPEG and edges only."""
    match = covisible(views[0], views[3])
    colour_a = views[0].rgb[match.rows_a, match.cols_a].astype(np.float64)
    colour_b = views[3].rgb[match.rows_b, match.cols_b].astype(np.float64)
    assert np.abs(colour_a - colour_b).mean() < 8.0
    # A wrong pose would pair unrelated pixels: compare against a shifted pairing.
    shifted = views[3].rgb[match.rows_b, np.clip(match.cols_b + 40, 0, WIDTH - 1)].astype(np.float64)
    assert np.abs(colour_a - shifted).mean() > 2 * np.abs(colour_a - colour_b).mean()


def test_suggested_clicks_fall_inside_their_objects(views, metadata):
    objects = metadata["objects"]
    assert {o["id"] for o in objects} == OBJECT_IDS
    assert metadata["demo_object_id"] == 1
    for entry in objects:
        view = views[int(entry["click"]["view"])]
        x, y = entry["click"]["x"], entry["click"]["y"]
        assert view.instance[y, x] == entry["id"], entry["name"]
        rows, cols = np.nonzero(view.instance == entry["id"])
        assert np.hypot(cols.mean() - x, rows.mean() - y) < 3.0  # it is the mask centroid
        assert entry["pixels_per_view"] == [int((v.instance == entry["id"]).sum()) for v in views]


@pytest.mark.skipif(not SCRIPT.is_file(), reason="generator script is not shipped with the package")
def test_generator_reproduces_view_zero(views, monkeypatch):
    """Re-rendering view 0 gives the shipped depth and ids exactly, and its colours up to JPEG loss."""
    spec = importlib.util.spec_from_file_location("make_demo_scene", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    camera = module.orbit_cameras()[0]
    np.testing.assert_allclose(camera.world_from_cam, views[0].camera.world_from_cam, atol=1e-8)
    rendered = module.render_view(module.build_scene(0), camera, np.random.default_rng([0, 0]))
    np.testing.assert_array_equal(rendered.instance, views[0].instance)
    np.testing.assert_array_equal(rendered.depth_mm, np.round(views[0].depth * 1000).astype(np.uint16))
    assert np.abs(rendered.rgb.astype(float) - views[0].rgb).mean() < 2.0
