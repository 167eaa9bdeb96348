"""``read_result`` on folders made by the real ``segment`` and ``track`` commands and on built layouts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from mvsam.cli import main
from mvsam.demo.run import SCENE_DIR, ground_truth_instances
from mvsam.export import export, read_result
from mvsam.export.result import images_key
from mvsam.io.images import write_mask_png


@pytest.fixture(scope="module")
def segment_result(tmp_path_factory, mobile_sam_checkpoint, mobile_sam_predictor):
    root = tmp_path_factory.mktemp("segment")
    cache = root / "cache"
    cache.mkdir()
    (cache / "embeddings").symlink_to(mobile_sam_predictor.cache.folder)  # the session's embeddings
    out = root / "out"
    argv = ["segment", str(SCENE_DIR), "--prompt", "view=0.jpg,x=265,y=267,label=1", "--out", str(out)]
    argv += ["--cache-dir", str(cache), "--checkpoint", str(mobile_sam_checkpoint), "--iterations", "1"]
    assert main(argv) == 0
    return out


def test_reads_a_segment_result(segment_result, mobile_sam_checkpoint):
    result = read_result(segment_result)
    assert result.layout == "single" and result.object_ids == [1] and result.command == "segment"
    assert result.views == [str(v) for v in range(8)]
    assert result.model == "mobile_sam" and len(result.checkpoint_sha256) == 64
    assert result.prompts == [{"kind": "Click", "spec": "view=0.jpg,x=265,y=267,label=1"}]
    assert result.names["0"] == "0.jpg" and 0 < result.scores[(1, "0")] <= 1.2
    mask = result.mask(1, "3")
    assert mask.shape == (480, 640) and mask.dtype == bool
    assert np.array_equal(result.ids("3"), mask.astype(np.int64))
    scene = result.load_scene()
    assert scene.root == SCENE_DIR and len(scene.views) == 8
    assert scene.cache_dir == segment_result.parent / "cache"  # the --cache-dir segment was given
    with pytest.raises(ValueError, match="no object with id 2"):
        result.mask(2, "3")


def test_exports_a_segment_result(segment_result, tmp_path, capsys):
    out = tmp_path / "exported"
    assert (
        main(["export", str(segment_result), "--format", "png,coco", "--format", "rgba", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "coco: instances.json" in printed and f"wrote {out}" in printed
    coco = json.loads((out / "instances.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == [f"{v}.jpg" for v in range(8)]
    for view in range(8):
        written = np.asarray(Image.open(out / "masks" / "1" / f"{view}.png"))
        original = np.asarray(Image.open(segment_result / "masks" / f"{view}.png"))
        assert np.array_equal(written, original)
        rgba = np.asarray(Image.open(out / "rgba" / f"{view}.png"))
        assert rgba.shape == (480, 640, 4) and np.array_equal(rgba[..., 3], original)


@pytest.mark.slow
def test_reads_a_track_result(tmp_path, mobile_sam_checkpoint):
    frames = tmp_path / "frames"
    frames.mkdir()
    for view in range(3):
        shutil.copy(SCENE_DIR / "color" / f"{view}.jpg", frames / f"{view:05d}.jpg")
    out = tmp_path / "track"
    argv = ["track", str(frames), "--prompt", "frame=0,x=265,y=267,label=1", "--out", str(out)]
    assert main([*argv, "--checkpoint", str(mobile_sam_checkpoint)]) == 0
    result = read_result(out)
    assert result.layout == "single" and result.command == "track" and result.object_ids == [1]
    assert result.views == ["00000", "00001", "00002"]
    assert result.load_scene().root == frames
    exported = tmp_path / "exported"
    report = export(result, "davis,yolo,coco", exported)
    assert sorted(report.written) == ["coco", "davis", "yolo"]
    coco = json.loads((exported / "instances.json").read_text())
    assert [image["file_name"] for image in coco["images"]] == ["00000.jpg", "00001.jpg", "00002.jpg"]
    ids = Image.open(exported / "ids" / "00001.png")
    assert ids.mode == "P" and np.array_equal(np.asarray(ids) == 1, result.mask(1, "00001"))


def test_reads_ids_and_per_object_layouts(ids_result, tmp_path):
    result = read_result(ids_result)
    assert result.layout == "ids" and result.object_ids == [1, 2, 3, 4]
    assert np.array_equal(result.ids("5"), ground_truth_instances(5))
    assert np.array_equal(result.mask(3, "5"), ground_truth_instances(5) == 3)
    per_object = tmp_path / "per_object"
    for object_id in (2, 7):
        for view in (0, 1):
            write_mask_png(
                per_object / "masks" / str(object_id) / f"{view}.png", ground_truth_instances(view) == 2
            )
    result = read_result(per_object)
    assert result.layout == "per_object" and result.object_ids == [2, 7] and result.views == ["0", "1"]
    assert result.scene is None
    with pytest.raises(ValueError, match="pass --scene"):
        result.load_scene()


def test_bad_results_are_refused_and_nothing_is_written(ids_result, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "missing"), "--format", "png", "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), "--format", "png", "--out", str(out)]) == 2
    assert "not a result folder" in capsys.readouterr().err
    assert main(["export", str(ids_result), "--format", "png", "--objects", "9", "--out", str(out)]) == 2
    assert "no object with id 9" in capsys.readouterr().err
    assert main(["export", str(ids_result), "--format", "tiff", "--out", str(out)]) == 2
    assert "unknown export format tiff" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_moved_or_changed_scene_is_refused(tmp_path, make_ids_result):
    scene = tmp_path / "scene"
    shutil.copytree(SCENE_DIR, scene)
    result = make_ids_result(tmp_path / "result", scene, tmp_path / "cache")
    report = json.loads((result / "report.json").read_text())
    report["source"]["images_key"] = images_key(read_result(result).load_scene(check=False))
    (result / "report.json").write_text(json.dumps(report))
    assert read_result(result).load_scene().root == scene  # unchanged: accepted
    image = np.asarray(Image.open(scene / "color" / "2.jpg")).copy()
    image[:10] = 0
    Image.fromarray(image).save(scene / "color" / "2.jpg")
    with pytest.raises(ValueError, match="changed since"):
        export(result, "rgba", tmp_path / "out")
    scene.rename(tmp_path / "moved")
    with pytest.raises(ValueError, match="not at .* any more"):
        export(result, "rgba", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # Saying where it moved works; the content check still applies.
    with pytest.raises(ValueError, match="changed since"):
        export(result, "rgba", tmp_path / "out", scene=tmp_path / "moved")


def test_refuses_a_non_empty_out_unless_forced(ids_result, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export(ids_result, "davis", out)
    assert (out / "keep.txt").read_text() == "mine"
    export(ids_result, "davis", out, force=True)
    assert not (out / "keep.txt").exists() and len(list((out / "ids").iterdir())) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folders left
