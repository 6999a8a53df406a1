"""The domain and infrastructure clients of Enterprise Connections, one subpackage per capability.

Nothing here imports ``azure.functions`` (functions/ translates triggers into calls on this package).
"""

__version__ = "0.1.0"
