"""Access: identities, tokens, roles, network rules, editions and quotas."""
