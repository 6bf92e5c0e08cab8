"""The catalogers: each recognises its files by path and turns their bytes into Packages.

A cataloger is pure: bytes in, packages out, problems handed to `note`. None touches the
file system or the network, and each bounds what it parses (`Limits`). OS packages come out
without ecosystem and purl: those depend on the distribution, which is known only when the
layers are combined (`combine.finish`).
"""
