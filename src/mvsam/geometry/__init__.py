"""Where every pixel is in 3D: SfM cameras, multi-view stereo depth, caching."""
