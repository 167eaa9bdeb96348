"""mvsam: Segment Anything masks that agree across many views of one scene."""

from mvsam.scene import Camera, Scene, SparsePoints, View

__all__ = ["Camera", "Scene", "SparsePoints", "View"]
__version__ = "0.1.0"
