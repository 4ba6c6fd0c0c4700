"""The Dockerfile as stages (dockerfile-parse, with the global ARG defaults substituted), for
tests that check it without a container engine."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from dockerfile_parse import DockerfileParser


@dataclass
class Stage:
    name: str
    base: str  # the FROM image or stage, ARG defaults substituted
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, value)

    def values(self, instruction: str) -> list[str]:
        return [value for name, value in self.instructions if name == instruction]


def stages(text: str) -> dict[str, Stage]:
    """Every stage by name (an unnamed stage by its index), in file order."""
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    bases = iter(parser.parent_images)
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            words = value.split()
            name = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else str(len(out))
            current = out[name] = Stage(name, next(bases))
        elif current is not None and instruction != "COMMENT":
            current.instructions.append((instruction, value))
    return out
