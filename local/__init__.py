"""Everything needed to run without Azure: the local Functions host, embedded Postgres, Azurite,
a local certificate authority and stand-ins of the external SaaS APIs. Never deployed (.funcignore)."""
