"""The registry core: push, pull, mount, delete, referrers, tag listing."""
