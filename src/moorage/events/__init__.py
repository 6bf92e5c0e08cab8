"""Event notifications (webhooks): subscriptions, durable deliveries, three payload formats.

The core announces what happened on its event bus; `dispatcher` turns matching events into
delivery rows and queue jobs in one transaction, and `delivery` sends them with retries. The
feature is wired in app.py with `install`, and can be left out by not calling it.
"""

from moorage.events.service import WebhookService, install

__all__ = ["WebhookService", "install"]
