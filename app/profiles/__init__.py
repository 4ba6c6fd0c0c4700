"""Fusion profiles: named, versioned blending settings that product managers edit."""

from app.profiles.model import DEFAULT_PROFILE, FusionProfile, FusionSpec
from app.profiles.repository import ProfileError, ProfileRepository

__all__ = [
    "DEFAULT_PROFILE",
    "FusionProfile",
    "FusionSpec",
    "ProfileError",
    "ProfileRepository",
]
