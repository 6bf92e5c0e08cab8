"""Image signing (issue 17): cosign-compatible keys, signing and verification.

A feature: installed from app.py on the edition's `signing` switch (service.install); the
core only announces pushes and deletes on its bus. keys.py (cosign's key formats),
artifacts.py, dsse.py, keyless.py and verify.py (cosign's artifacts and the verifier, pure),
signer.py (what is signed, and the check of what a client signed), store.py (the tables),
trust.py (trusted keys and identities), writer.py (signatures written through the registry),
service.py (the service: signing, the stored verification recomputed on change, jobs).
"""
