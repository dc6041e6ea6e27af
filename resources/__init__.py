"""Data files: device catalogue, structure colours, presets (read with importlib.resources)."""
