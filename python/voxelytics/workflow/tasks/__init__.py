"""The built-in tasks (importing this package registers them)."""

from . import cells, connectome, data, evaluate, export, models, neurons, somata, synapses  # noqa: F401
