"""A stand-in for OpenCompass in CI: enough to be found by importlib and run by the adapter."""
