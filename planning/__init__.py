"""The domain of IRPlan: geometry, plans, needles, safety checks, zones, evaluation.

Pure Python + numpy/scipy/SimpleITK; never imports Qt or VTK. All points are LPS mm.
"""
