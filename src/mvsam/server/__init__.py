"""``mvsam serve``: a local web app to click an object in any view and watch every view follow.

``create_app(Workspace(scene_path, out_dir))`` builds the FastAPI app; the HTTP API is documented in the
README. The page (``static/``) uses three.js, vendored at a pinned version under ``static/vendor/three``.
"""

from mvsam.server.app import create_app
from mvsam.server.workspace import Workspace

__all__ = ["Workspace", "create_app"]
