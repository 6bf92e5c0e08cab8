"""Import (issue 18, item 5): another registry's repositories (a whole registry, one
namespace, or a list), copied into this instance by the server, resumable after a crash,
with progress. From any Distribution-API registry (`_catalog`, tag listing) or from Harbor
(its `/api/v2.0` projects and repositories, then the same v2 pulls). Installed from app.py
through `replication.install_imports` on editions with the `import` switch.

    model.py    what an import asks for, its checks (pure)
    store.py    the imports and their plans (import_items)
    listing.py  the source's repositories and tags (Distribution or Harbor)
    service.py  management, and the job that works through the plan with the copy engine
"""
