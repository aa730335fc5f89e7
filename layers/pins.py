"""The layers' pins come from the one lock: every ``name==version`` line of ``layers/*.txt`` takes the version that
``constraints.txt`` pins (the lock that ``make install`` installs the test environment with and ``make lock``
resolves), so the Lambda layers run the versions the tests run.

    python layers/pins.py           rewrite the pins of layers/*.txt in place (``make lock`` does)
    python layers/pins.py --check   list each pin that differs from the lock and exit 1 (tests/unit/test_lock.py)

Only the version of a pin changes; comments, extras and the choice of packages per layer stay the layers' own.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LAYERS_DIR = Path(__file__).resolve().parent
LOCK = LAYERS_DIR.parent / "constraints.txt"
# The interpreter the layers are built for (soorma.infra.packaging: Lambda's Python 3.12 on arm64 Amazon Linux), for
# the environment markers of the lock's lines.
LAMBDA_ENVIRONMENT = {
    "python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux", "platform_system": "Linux",
    "platform_machine": "aarch64", "os_name": "posix", "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
_PIN = re.compile(r"^(?P<requirement>[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?)==(?P<version>[^\s;#]+)")


def _requirement_lines(path: Path) -> list[tuple[int, Requirement]]:
    """``(line index, requirement)`` of each requirement line of a requirement file (comments and blanks skipped)."""
    found = []
    for index, line in enumerate(path.read_text().splitlines()):
        text = line.split(" #", 1)[0].strip()
        if text and not text.startswith(("#", "-")):
            found.append((index, Requirement(text)))
    return found


def lock_versions(lock: Path = LOCK) -> dict[str, list[tuple[str, Requirement]]]:
    """The lock as ``{canonical name: [(version, requirement with its marker), ...]}``; one entry per name unless the
    resolution forked by environment (``make lock`` asks uv for as few versions as possible, so it does not)."""
    versions: dict[str, list[tuple[str, Requirement]]] = {}
    for _, requirement in _requirement_lines(lock):
        (spec,) = requirement.specifier  # a lock line is `name==version [; marker]`
        versions.setdefault(canonicalize_name(requirement.name), []).append((spec.version, requirement))
    return versions


def locked_version(name: str, lock: dict[str, list[tuple[str, Requirement]]],
                   environment: dict[str, str] | None = None) -> str | None:
    """The version the lock pins for ``name`` in ``environment`` (default: the running interpreter's), or None."""
    for version, requirement in lock.get(canonicalize_name(name), []):
        if requirement.marker is None or requirement.marker.evaluate(environment):
            return version
    return None


def differences(layers_dir: Path = LAYERS_DIR, lock_file: Path = LOCK) -> list[str]:
    """One line per layer pin that is not the lock's version for Lambda (``layers/x.txt: name==1 but the lock
    pins 2``), or that the lock does not have at all."""
    lock = lock_versions(lock_file)
    problems = []
    for path in sorted(layers_dir.glob("*.txt")):
        for _, requirement in _requirement_lines(path):
            pinned = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            wanted = locked_version(requirement.name, lock, LAMBDA_ENVIRONMENT)
            if wanted is None:
                problems.append(f"layers/{path.name}: {requirement.name} is not in {lock_file.name} (add it to a "
                                "pyproject.toml extra that the tests install, then `make lock`)")
            elif pinned != [wanted]:
                problems.append(f"layers/{path.name}: {requirement} but {lock_file.name} pins {wanted}")
    return problems


def write(layers_dir: Path = LAYERS_DIR, lock_file: Path = LOCK) -> list[Path]:
    """Set every pin of ``layers_dir/*.txt`` to the lock's version for Lambda; returns the files changed. Raises
    ``KeyError`` naming a pinned package the lock does not have."""
    lock = lock_versions(lock_file)
    changed = []
    for path in sorted(layers_dir.glob("*.txt")):
        lines = path.read_text().splitlines(keepends=True)
        for index, requirement in _requirement_lines(path):
            wanted = locked_version(requirement.name, lock, LAMBDA_ENVIRONMENT)
            if wanted is None:
                raise KeyError(f"layers/{path.name}: {requirement.name} is not in {lock_file.name}")
            lines[index] = _PIN.sub(lambda m: f"{m['requirement']}=={wanted}", lines[index], count=1)
        text = "".join(lines)
        if text != path.read_text():
            path.write_text(text)
            changed.append(path)
    return changed


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problems = differences()
        print("\n".join(problems) or "layers/*.txt pin what constraints.txt pins")
        return 1 if problems else 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    for path in write():
        print(f"updated {path.relative_to(LAYERS_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
