"""Reading and writing files: images, scene layouts."""
