"""Admin access: API keys scoped to every tenant (operator) or to one (tenant:<slug>), the one
authentication helper every /api/admin endpoint uses, and the audit of every admin action."""
