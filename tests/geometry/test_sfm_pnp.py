"""The PnP path of SfM on real photos: a view the incremental mapper leaves out is registered afterwards by
PnP against the triangulated points, with a camera that agrees with the dataset's."""

from __future__ import annotations

import shutil

import numpy as np
import pycolmap
import pytest

from mvsam.geometry.metrics import relative_rotation_errors
from mvsam.geometry.sfm import reconstruct_cameras
from mvsam.io.conventions import llff_to_world_from_cam
from mvsam.io.loaders import load_scene

FERN_VIEWS = [0, 3, 6, 9]
LEFT_OUT = 2  # position in FERN_VIEWS of the view the mapper is made to drop


@pytest.fixture
def fern_folder(data_dir, tmp_path):
    images = sorted((data_dir / "llff_fern" / "images_8").iterdir())
    folder = tmp_path / "fern"
    folder.mkdir()
    for index in FERN_VIEWS:
        shutil.copy(images[index], folder / images[index].name)
    return folder


def test_view_left_out_by_the_mapper_is_registered_by_pnp(fern_folder, data_dir, monkeypatch):
    scene = load_scene(fern_folder, format="images", cache_dir=fern_folder.parent / "cache")
    dropped = scene.views[LEFT_OUT].name
    mapper = pycolmap.incremental_mapping

    def mapper_without_one_view(*args, **kwargs):
        """The real mapper, then the view deregistered, as when the mapper cannot register it."""
        reconstructions = mapper(*args, **kwargs)
        for reconstruction in reconstructions.values():
            for image in list(reconstruction.images.values()):
                if image.name == dropped and image.has_pose:
                    reconstruction.deregister_frame(image.frame_id)
        return reconstructions

    monkeypatch.setattr(pycolmap, "incremental_mapping", mapper_without_one_view)
    report = reconstruct_cameras(scene)

    assert report.pnp == [dropped] and not report.unregistered
    assert dropped not in report.registered and len(report.registered) == len(FERN_VIEWS) - 1
    assert report.status(dropped) == "pnp" and "1 by PnP" in report.summary()
    assert all(view.camera is not None for view in scene.views)
    # its 2D-3D inliers became observations of the sparse points
    assert np.count_nonzero(scene.sparse.track_view == LEFT_OUT) >= 15
    # its camera agrees with the dataset's poses about as well as the mapper's own views do (measured:
    # 0.52-1.19 deg for the pairs with the PnP view, 0.49-0.93 deg for the others)
    poses = np.load(data_dir / "llff_fern" / "poses_bounds.npy")
    reference = [llff_to_world_from_cam(poses[i, :15].reshape(3, 5))[0] for i in FERN_VIEWS]
    estimated = [view.camera.world_from_cam for view in scene.views]
    errors = relative_rotation_errors(estimated, reference)
    pairs = [(i, j) for i in range(len(FERN_VIEWS)) for j in range(i + 1, len(FERN_VIEWS))]
    with_pnp = np.array([LEFT_OUT in pair for pair in pairs])
    assert np.max(errors[with_pnp]) < 2.0 and np.max(errors[~with_pnp]) < 2.0, errors
