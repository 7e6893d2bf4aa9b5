"""The hub: a federated GraphQL gateway for social-assistance data sharing."""

from hub.errors import HubError

__version__ = "0.1.0"
__all__ = ["HubError", "__version__"]
