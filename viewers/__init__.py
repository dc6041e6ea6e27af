"""VTK-in-Qt views (MPR, 3D, needle-aligned). They observe the model, never own it."""
