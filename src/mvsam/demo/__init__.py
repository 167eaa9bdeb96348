"""The small scene bundled with the package, and the ``mvsam demo`` job."""
