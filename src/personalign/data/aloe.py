"""ALOE (the DPORE paper's data) as training rows: the `build-dataset aloe` builder."""

from __future__ import annotations

import hashlib


def aloe_persona_id(profile: str, personality: str) -> str:
    """The stable id of an ALOE persona: the first 16 hex digits of the SHA-256 of `profile + "\\n" + personality`.

    Args:
        profile (`str`): The persona's profile text.
        personality (`str`): Its personality text.

    Returns:
        `str`: The id; the same texts always give the same id.
    """
    return hashlib.sha256(f"{profile}\n{personality}".encode()).hexdigest()[:16]
