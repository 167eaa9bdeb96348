"""2D <-> 3D: unproject masks, voxel grids, visibility-aware projection, 3D votes."""
