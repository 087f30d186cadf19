"""pocketlm.stages: the stage commands of ``pocketlm`` (ingest, train, export, evaluate, run).

They need the ``[train]`` extra. The console script is the runtime's
(:mod:`pocketlm.runtime.cli`); it finds these commands by name through the entry-point group
``pocketlm.commands`` (pyproject.toml) and imports them only when one is named. This package is
the top layer: it imports the pipeline, export and the runtime; nothing imports it.
"""
