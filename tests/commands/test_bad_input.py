"""Hostile input, one case per test: a clear one-line error naming the file (exit 2), or the documented
correct result. Every CLI case fails before the slow part (geometry, SAM embeddings)."""

from __future__ import annotations

import json
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pycolmap
import pytest
from PIL import Image

from mvsam.cache import FILE_MODE, atomic_write_bytes, remove_orphan_temporaries
from mvsam.cli import main
from mvsam.errors import InputError
from mvsam.io.images import list_images, read_mask_png, read_rgb
from mvsam.io.video import open_frames
from mvsam.sam.predictor import EmbeddingCache
from mvsam.sam.weights import read_state_dict, weights_fingerprint
from mvsam.scene import Scene
from mvsam.segment.prompts import parse_click, parse_mask_prompt

DEMO = Path(__file__).resolve().parents[2] / "src" / "mvsam" / "demo" / "scene"


@pytest.fixture
def demo(tmp_path) -> Path:
    """A writable copy of the bundled demo scene (8 views, depth and poses provided)."""
    return Path(shutil.copytree(DEMO, tmp_path / "demo"))


def cli(capsys, *argv) -> tuple[int, str]:
    """Run ``mvsam argv``; (exit code, stderr)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def one_line_error(err: str, *names: str) -> None:
    """The error is one line (no traceback; progress bars and warnings aside) and names each of ``names``."""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], (name, lines[0])


def write_image(path: Path, width: int = 64, height: int = 48, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# ---------------------------------------------------------------- images


def test_16bit_gray_png_is_scaled_not_white(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    rgb = read_rgb(tmp_path / "g16.png")
    assert rgb.shape == (8, 64, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255 and abs(int(rgb[0, 32, 0]) - 130) <= 2


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    Image.new("CMYK", (32, 16), (0, 255, 255, 0)).save(tmp_path / "red.jpg", quality=95)  # pure red ink
    rgb = read_rgb(tmp_path / "red.jpg")
    assert rgb.shape == (16, 32, 3) and rgb[8, 16, 0] > 200 and rgb[8, 16, 1:].max() < 60


def test_exif_orientation_keeps_stored_pixels_and_is_noted(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(2):
        image = Image.fromarray(np.full((30, 40, 3), 100 + index, np.uint8))
        exif = Image.Exif()
        exif[0x0112] = 6  # rotated 90 degrees clockwise for display
        image.save(folder / f"{index}.jpg", exif=exif)
    assert read_rgb(folder / "0.jpg").shape == (30, 40, 3)  # as stored, like COLMAP
    scene = Scene.load(folder)
    assert (scene.views[0].width, scene.views[0].height) == (40, 30)
    assert any("EXIF rotation" in note for note in scene.notes)


def test_huge_image_dimensions_are_refused_by_name(tmp_path, capsys):
    path = tmp_path / "huge.png"
    # A valid PNG header claiming 30000x30000 pixels (900 Mpx) with almost no data behind it.
    Image.new("1", (30000, 30000)).save(path, optimize=False)
    with pytest.raises(InputError, match="huge.png.*too large"):
        read_rgb(path)


def test_corrupt_mask_png_names_the_file(demo, tmp_path, capsys):
    bad = tmp_path / "mask.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    code, err = cli(capsys, "segment", demo, "--mask-prompt", f"view=0,path={bad}", "--out", tmp_path / "o")
    assert code == 2
    one_line_error(err, str(bad))


def test_mask_prompts_any_nonzero_and_palette_ids(tmp_path):
    zero_one = np.zeros((6, 8), np.uint8)
    zero_one[2:4, 3:6] = 1
    Image.fromarray(zero_one).save(tmp_path / "01.png")
    assert read_mask_png(tmp_path / "01.png").sum() == 6  # was empty with the old > 127 threshold
    labels = np.zeros((6, 8), np.uint8)
    labels[0:2, 0:2], labels[4:6, 5:8] = 1, 2
    palette = Image.fromarray(labels, mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
    palette.save(tmp_path / "davis.png")
    with pytest.raises(InputError, match=r"davis.png holds several object ids \[1, 2\].*object=ID"):
        parse_mask_prompt(f"view=0,path={tmp_path / 'davis.png'}")
    chosen = parse_mask_prompt(f"frame=0,path={tmp_path / 'davis.png'},object=2")
    assert chosen.mask.sum() == 6 and chosen.mask[5, 7] and not chosen.mask[0, 0]
    with pytest.raises(InputError, match="has no object 3"):
        parse_mask_prompt(f"view=0,path={tmp_path / 'davis.png'},object=3")
    # The demo's instance maps (ids 0..4 as gray levels) are label images too.
    with pytest.raises(InputError, match="several object ids"):
        read_mask_png(DEMO / "instance" / "0.png")


# ---------------------------------------------------------------- prompts and views


def test_view_digits_resolve_by_name_before_index(tmp_path):
    for index in range(1, 11):
        write_image(tmp_path / "scene" / f"{index:04d}.jpg", seed=index)
    scene = Scene.load(tmp_path / "scene")
    assert scene.view_index(parse_click("view=0007,x=1,y=1").view) == 6  # the file 0007.jpg
    assert scene.view_index(parse_click("view=7,x=1,y=1").view) == 7  # no such name: index 7
    assert [p.name for p in list_images(tmp_path / "scene")][:3] == ["0001.jpg", "0002.jpg", "0003.jpg"]


def test_image_lister_is_natural_and_skips_hidden(tmp_path):
    for name in ["10.jpg", "2.jpg", "1.jpg", "._3.jpg", ".hidden.png"]:
        write_image(tmp_path / name)
    assert [p.name for p in list_images(tmp_path)] == ["1.jpg", "2.jpg", "10.jpg"]
    assert open_frames(tmp_path).stems == ["1", "2", "10"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("view=0,x=abc", "x='abc' is not a number"),
        ("view=0,x=1,y=2,label=7", "label must be 1"),
        ("view=nosuch.jpg,x=1,y=2", "unknown view 'nosuch.jpg'"),
        ("view=99,x=1,y=2", "view index 99 is out of range"),
        ("view=0,x=5000,y=2", "outside its 640x480 image"),
    ],
)
def test_bad_prompts_fail_before_any_geometry(demo, tmp_path, capsys, spec, message):
    start = time.perf_counter()
    code, err = cli(capsys, "segment", demo, "--prompt", spec, "--out", tmp_path / "o")
    assert code == 2 and message in err
    one_line_error(err)
    assert not (demo / ".mvsam_cache" / "geometry").exists()  # nothing slow ran
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--iterations", "0"], "--iterations must be >= 1"), (["--planes", "1"], "num_planes must be >= 3")],
)
def test_bad_options_fail_before_any_geometry(demo, tmp_path, capsys, flags, message):
    code, err = cli(capsys, "segment", demo, "--prompt", "view=0,x=1,y=1", "--out", tmp_path / "o", *flags)
    assert code == 2 and message in err
    assert not (demo / ".mvsam_cache").exists()


def test_out_naming_an_existing_file_fails_first(demo, tmp_path, capsys):
    existing = tmp_path / "taken.txt"
    existing.write_text("mine")
    code, err = cli(capsys, "segment", demo, "--prompt", "view=0,x=265,y=267", "--out", existing)
    assert code == 2
    one_line_error(err, str(existing))
    assert existing.read_text() == "mine" and not (demo / ".mvsam_cache").exists()


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"<html><body>404 Not Found</body></html>\n", "text file"),
        (b"\x80\x04\x95" + b"\x00" * 64, "raw pickle"),
        (None, "truncated"),
    ],
    ids=["html", "pickle", "truncated"],
)
def test_bad_checkpoints_get_one_line(demo, tmp_path, capsys, mobile_sam_checkpoint, content, why):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(mobile_sam_checkpoint.read_bytes()[:300_000] if content is None else content)
    with pytest.raises(InputError, match=why):
        read_state_dict(bad)
    code, err = cli(capsys, "segment", demo, "--prompt", "view=0,x=1,y=1", "--out", tmp_path / "o",
                    "--checkpoint", bad)  # fmt: skip
    assert code == 2
    one_line_error(err, str(bad))
    assert not (demo / ".mvsam_cache" / "geometry").exists()


def test_checkpoint_fingerprint_covers_the_whole_file(tmp_path, mobile_sam_checkpoint):
    copy = tmp_path / "copy.pt"
    shutil.copyfile(mobile_sam_checkpoint, copy)
    original = weights_fingerprint(copy)
    assert weights_fingerprint(copy) == original  # remembered by path + size + mtime
    data = bytearray(copy.read_bytes())
    data[-1000] ^= 0xFF  # a change far past the first 4 MiB
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert weights_fingerprint(copy) != original


# ---------------------------------------------------------------- scene layouts


def colmap_scene(root: Path) -> Path:
    """A 2-view COLMAP binary model written by pycolmap itself, with its images."""
    write_image(root / "images" / "a.png", seed=1)
    write_image(root / "images" / "b.png", seed=2)
    text = root / "text"
    text.mkdir()
    (text / "cameras.txt").write_text("1 PINHOLE 64 48 50 50 32 24\n")
    (text / "images.txt").write_text(
        "1 1 0 0 0 0 0 0 1 a.png\n10 10 1\n2 1 0 0 0 -0.5 0 0 1 b.png\n12 10 1\n"
    )
    (text / "points3D.txt").write_text("1 0 0 5 200 100 50 0.5 1 0 2 0\n")
    model = root / "sparse" / "0"
    model.mkdir(parents=True)
    pycolmap.Reconstruction(str(text)).write_binary(str(model))
    shutil.rmtree(text)
    return model


def test_colmap_binary_model_loads(tmp_path):
    colmap_scene(tmp_path / "scene")
    scene = Scene.load(tmp_path / "scene")
    assert scene.source_format == "colmap" and len(scene.views) == 2 and len(scene.sparse.xyz) == 1


@pytest.mark.parametrize("name", ["points3D", "cameras", "images"])
def test_truncated_colmap_files_are_refused_before_allocating(tmp_path, capsys, name):
    model = colmap_scene(tmp_path / "scene")
    path = model / f"{name}.bin"
    path.write_bytes(path.read_bytes()[:-5])
    start = time.perf_counter()
    code, err = cli(capsys, "reconstruct", tmp_path / "scene", "--out", tmp_path / "o")
    assert code == 2 and "truncated" in err
    one_line_error(err, str(path))
    assert time.perf_counter() - start < 10


def test_colmap_count_claiming_billions_is_refused(tmp_path, capsys):
    model = colmap_scene(tmp_path / "scene")
    path = model / "points3D.bin"
    path.write_bytes((2_000_000_000).to_bytes(8, "little") + path.read_bytes()[8:])
    code, err = cli(capsys, "reconstruct", tmp_path / "scene", "--out", tmp_path / "o")
    assert code == 2
    one_line_error(err, str(path))


def test_colmap_folder_without_images_bin_is_refused_not_replaced_by_sfm(tmp_path, capsys):
    model = colmap_scene(tmp_path / "scene")
    (model / "images.bin").unlink()
    code, err = cli(capsys, "reconstruct", tmp_path / "scene", "--out", tmp_path / "o")
    assert code == 2 and "incomplete COLMAP model" in err and "--format images" in err
    one_line_error(err, str(model))


def test_transforms_json_holding_a_list(tmp_path, capsys):
    write_image(tmp_path / "scene" / "a.png")
    (tmp_path / "scene" / "transforms.json").write_text("[1, 2, 3]")
    code, err = cli(capsys, "reconstruct", tmp_path / "scene", "--out", tmp_path / "o")
    assert code == 2 and "expected a JSON object" in err
    one_line_error(err, "transforms.json")


def llff_scene(root: Path, near_far=(1.0, 5.0)) -> Path:
    for index in range(2):
        write_image(root / "images" / f"{index}.png", seed=index)
    rows = []
    for index in range(2):
        rotation = np.eye(3)[:, [1, 0, 2]] * [1, 1, -1]  # LLFF [down, right, back] columns
        pose = np.concatenate([rotation, [[index * 0.1], [0], [0]], [[48], [64], [50]]], axis=1)
        rows.append(np.concatenate([pose.ravel(), near_far]))
    np.save(root / "poses_bounds.npy", np.array(rows))
    return root / "poses_bounds.npy"


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_unreadable_poses_bounds(tmp_path, capsys, damage):
    path = llff_scene(tmp_path / "scene")
    path.write_bytes(path.read_bytes()[:100] if damage == "truncated" else b"1 2 3\n4 5 6\n")
    code, err = cli(capsys, "reconstruct", tmp_path / "scene", "--out", tmp_path / "o")
    assert code == 2 and "allow_pickle" not in err
    one_line_error(err, str(path))


def test_nan_near_far_is_noted(tmp_path):
    llff_scene(tmp_path / "scene", near_far=(np.nan, 5.0))
    with pytest.warns(UserWarning, match="near/far"):
        scene = Scene.load(tmp_path / "scene")
    assert all(view.depth_range is None for view in scene.views)
    assert any("poses_bounds.npy row 0" in note for note in scene.notes)


def test_symlink_loops(tmp_path, capsys):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    code, err = cli(capsys, "reconstruct", loop, "--out", tmp_path / "o")
    assert code == 2
    one_line_error(err, str(loop))
    folder = tmp_path / "frames"
    write_image(folder / "1.png")
    write_image(folder / "2.png")
    (folder / "3.png").symlink_to(folder / "3.png")
    assert [p.name for p in list_images(folder)] == ["1.png", "2.png"]


def test_variable_frame_rate_video_keeps_every_frame(tmp_path):
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for index in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * index, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += (33, 100, 10, 250, 40, 33)[index]  # irregular gaps
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    frames = open_frames(path)
    assert len(frames) == 6 and frames.stems[:2] == ["000000", "000001"]
    scene = Scene.load(path, cache_dir=tmp_path / "cache")
    assert [view.name for view in scene.views] == [f"{i:06d}.jpg" for i in range(6)]  # one frame-name format


# ---------------------------------------------------------------- errors, files, caches


def test_internal_bugs_keep_their_traceback(demo, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")  # a bug, not the user's input

    monkeypatch.setattr("mvsam.commands.reconstruct.compute_geometry", broken)
    with pytest.raises(ValueError, match="broadcast"):
        main(["reconstruct", str(demo), "--out", str(tmp_path / "o")])


def test_outputs_respect_the_umask_and_orphans_are_removed(tmp_path):
    atomic_write_bytes(tmp_path / "report.json", b"{}")
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == FILE_MODE
    cache = tmp_path / "embeddings" / "ab"
    cache.mkdir(parents=True)
    dead = cache / ".abc.npy.999999999.x1.tmp"  # written by a process that no longer exists
    alive = cache / f".abd.npy.{os.getpid()}.x2.tmp"  # being written right now by us
    dead.write_bytes(b"partial")
    alive.write_bytes(b"partial")
    EmbeddingCache(tmp_path / "embeddings")
    assert not dead.exists() and alive.exists()
    assert remove_orphan_temporaries(tmp_path) == 0


def test_version_and_help_show_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("mvsam ")
    with pytest.raises(SystemExit):
        main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 4)" in text and "--video-stride" in text and "--overlay" in text
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    assert "--overlay" in capsys.readouterr().out


def test_read_only_scene_cache_location_is_printed(demo, tmp_path, capsys):
    for path in [demo, *demo.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    try:
        code = main(["reconstruct", str(demo), "--out", str(tmp_path / "o"), "--no-depth"])
    finally:
        for path in [demo, *demo.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
    assert code == 0
    out = capsys.readouterr().out
    assert "is read-only: cache in" in out and str(os.environ["MVSAM_HOME"]) in out
    assert json.loads((tmp_path / "o" / "views.json").read_text())[0]["image"] == "0.jpg"


def test_track_refuses_a_background_click(data_dir, tmp_path, capsys, mobile_sam_checkpoint):
    """A click on car-turn's road (real SAM: its mask spans the frame, 28% of it) is refused by name; a
    click on the car is tracked (tests/commands/test_track_cli.py)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(2):
        shutil.copy(data_dir / "davis2016_train8/JPEGImages/480p/car-turn" / f"{index:05d}.jpg", frames)
    code, err = cli(capsys, "track", frames, "--prompt", "frame=00000,x=629,y=294", "--out", tmp_path / "o",
                    "--checkpoint", mobile_sam_checkpoint)  # fmt: skip
    assert code == 2 and "selects background" in err and "--box" in err
    one_line_error(err, "(629, 294) on frame 0")
