"""The package's version, in a module of its own: the instrumentation names its tracer with it
without importing the package root (which imports the instrumentation)."""

__version__ = "0.1.0"
