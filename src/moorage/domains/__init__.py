"""Custom domain names: hostnames with a certificate of their own, chosen by SNI.

The certificates live in the metadata database (`store.py`), so that every replica serves the
same set; `service.py` checks a pair before it is stored (the edition, the key, the validity
period, the hostname); `front.py` is the TLS front (HAProxy) that `moorage serve` runs when
there are domains to serve, and keeps in step with the table without a restart.
"""

from moorage.domains.service import DomainService, install

__all__ = ["DomainService", "install"]
