"""Inventory engines besides the built-in cataloguers (issue 16, item 4): Syft today, each
turning an image into the shared `Inventory` so that the rest of the scanner never knows
which engine saw a package (`Package.engines` says)."""
