"""Writers for masks, point clouds, meshes and reports; ``export`` turns a result folder into other formats.

from mvsam.export import export, read_result
result = read_result("out/dtu_object")          # any segment / track / auto output folder
export(result, "coco,yolo,mesh", "out/exported")
"""

from mvsam.export.api import FORMATS, ExportReport, export, parse_formats
from mvsam.export.result import Result, SceneReference, read_result

__all__ = ["FORMATS", "ExportReport", "Result", "SceneReference", "export", "parse_formats", "read_result"]
