"""Version of the generated phantom (anatomy, plan, truth), kept apart from
:mod:`irplan.planning.phantom` so that checking the demo cache imports nothing heavy."""

# Bump when the generated anatomy, plan or truth changes (the demo cache is keyed on it).
PHANTOM_VERSION = 4  # 4: intra-op electrodes as placed (issue 15)
