"""Writers for masks, point clouds and reports."""
