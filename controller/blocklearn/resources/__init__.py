"""The Block and Example resources: their shapes (models), CRDs, conditions, and where they live."""

from blocklearn import API_VERSION
from blocklearn.runtime.objects import resource_path


def custom_path(plural: str, namespace: str | None = None, name: str = "", sub: str = "") -> str:
    """The URL path of our group's resources: a collection, an object, or its subresource."""
    return resource_path(API_VERSION, plural, namespace, name, sub)
