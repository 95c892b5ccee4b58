"""The built-in tasks (importing this package registers them)."""

from . import data, evaluate, models, neurons, somata, synapses  # noqa: F401
