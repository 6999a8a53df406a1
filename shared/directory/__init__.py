"""WorkOS Directory Sync: signed webhooks and the Events API, applied to the identity store."""
