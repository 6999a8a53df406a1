"""The SCIM 2.0 service provider (one per tenant). ``tokens``: the Bearer tokens customer IdPs use."""
