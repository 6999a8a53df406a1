"""HRMS: employee context read from the customer's HR system (one sync engine, one connector per HRMS)."""
