"""Image signing (issue 17): cosign-compatible keys, signing, verification and trust policies.
A feature: installed from app.py on the edition's `signing` switch; the core only announces
pushes and answers pull hooks. So far only the keys (keys.py) exist; nothing is wired in.
"""
