"""The outcome of one `doctor` check: ok, warn or fail, with the fix an installer types."""

from __future__ import annotations

from dataclasses import asdict, dataclass

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, OK, detail)


def warn(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, FAIL, detail, fix)
