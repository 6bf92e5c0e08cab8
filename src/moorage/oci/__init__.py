"""OCI rules as pure functions: digests, names, references, media types, manifests, errors."""
