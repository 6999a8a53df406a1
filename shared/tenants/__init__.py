"""Tenants (customer organisations) and their apps: the registry every surface reads.

``models`` holds what a tenant and an app are and the rules their fields obey; ``registry`` creates,
reads and changes tenants; ``apps`` manages apps and their credentials.
"""
