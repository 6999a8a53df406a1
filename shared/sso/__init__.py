"""SSO and routing: sign-in through WorkOS or directly against a tenant's Entra ID, one callback,
and the hand-over to the tenant's app."""
