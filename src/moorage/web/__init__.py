"""HTTP interfaces: the /v2 registry API, and later the management API and console."""
