"""Lifting on the bundled demo scene: real loader output (poses, depth in mm) and exact instance masks."""

from __future__ import annotations

import numpy as np
import pytest

from mvsam.demo.run import ground_truth_instances, load_demo_scene
from mvsam.evaluate.metrics import iou
from mvsam.lift.project import unproject_mask, visible_mask
from mvsam.lift.votes import VoxelVotes
from mvsam.lift.voxels import VoxelGrid, default_voxel_size


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    scene = load_demo_scene(tmp_path_factory.mktemp("demo_cache"))
    assert scene.has_cameras and scene.has_depth
    instances = [ground_truth_instances(index) for index in range(len(scene))]
    return scene, instances


def test_an_object_unprojected_from_one_view_lands_on_it_in_another(demo):
    scene, instances = demo
    source, target = scene.views[0], scene.views[1]
    points = unproject_mask(source.camera, source.depth, instances[0] == 2)  # the blue box
    visibility = visible_mask(target.camera, target.depth, points, rel_tol=0.01)
    assert visibility.visible.mean() > 0.5
    landed = instances[1].reshape(-1)[visibility.pixel[visibility.visible]]
    assert np.mean(landed == 2) > 0.98


def test_votes_of_seven_views_predict_the_eighth(demo):
    scene, instances = demo
    cameras = [view.camera for view in scene.views]
    depths = [view.depth for view in scene.views]
    votes = VoxelVotes(VoxelGrid(default_voxel_size(cameras[:7], depths[:7])))
    located = [votes.locate(cameras[index], depths[index]) for index in range(8)]
    for object_id, min_iou in ((1, 0.9), (2, 0.95)):  # red sphere, blue box
        votes.clear()
        for index in range(7):
            votes.vote(located[index], instances[index] == object_id)
        predicted = np.nan_to_num(votes.footprint(located[7]), nan=0.0) > 0.5
        assert iou(predicted, instances[7] == object_id) > min_iou
