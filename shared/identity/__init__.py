"""The identity store shared by SCIM, Directory Sync and sign-in: users, their identities per
channel, groups, memberships, and the per-tenant change log. ``store`` states the matching rules."""
