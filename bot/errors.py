"""Errors that carry a user-facing reason. `kind` is a stable machine word; str() is for humans."""

from __future__ import annotations

import errno


class FeedbotError(Exception):
    kind = "error"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class FetchError(FeedbotError):
    """The feed could not be fetched. kind is one of: http, timeout, too_large, blocked,
    connect, redirects, bad_url, gone, rate_limited."""

    kind = "fetch"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, kind=kind)
        self.status = status
        self.retry_after = retry_after


class BlockedAddressError(FetchError):
    """The URL points at an address the bot refuses to contact (SSRF guard)."""

    kind = "blocked"


class ParseError(FeedbotError):
    """The document is not a usable RSS/Atom/JSON feed."""

    kind = "not_a_feed"


class StorageWriteError(FeedbotError):
    """The database could not be written (the change was undone in memory, nothing is on disk).
    kind is one of: disk_full, read_only, io; the catalogue key is `error_storage_<kind>`."""

    kind = "io"

    @classmethod
    def from_os_error(cls, path: object, exc: OSError) -> StorageWriteError:
        kind = _STORAGE_KINDS.get(exc.errno or 0, "io")
        return cls(f"cannot write {path}: {exc.strerror or exc}", kind=kind)

    @property
    def catalogue_key(self) -> str:
        return f"error_storage_{self.kind}"


_STORAGE_KINDS = {
    errno.ENOSPC: "disk_full",
    errno.EDQUOT: "disk_full",
    errno.EROFS: "read_only",
    errno.EACCES: "read_only",
    errno.EPERM: "read_only",
}
