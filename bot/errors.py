"""Errors that carry a user-facing reason.

`kind` is a stable machine word; str() is English for the log; `reason` is what users read: a
catalogue key and its arguments, shown in the chat's language (`Reason.text`).
"""

from __future__ import annotations

import errno
import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.i18n import t


@dataclass(frozen=True)
class Reason:
    """Why something failed, as a catalogue key and arguments (language-neutral, storable).

    A key of "" is a reason stored by an older version as English text only (`args["text"]`)."""

    key: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def text(self, lang: str | None = None) -> str:
        """Telegram HTML in `lang` (default: the current chat's); arguments are escaped."""
        if not self.key:
            return html.escape(str(self.args.get("text", "")))
        values = {
            name: (
                value.text(lang) if isinstance(value, Reason | Series) else html.escape(str(value))
            )
            for name, value in self.args.items()
        }
        return t(self.key, lang, **values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "args": {
                k: v.to_dict() if isinstance(v, Reason) else v for k, v in self.args.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reason:
        args = {
            k: cls.from_dict(v) if isinstance(v, Mapping) and "key" in v else v
            for k, v in dict(data.get("args") or {}).items()
        }
        return cls(str(data.get("key") or ""), args)

    @classmethod
    def legacy(cls, english: str) -> Reason:
        """A reason known only as English text (stored before reasons had keys)."""
        return cls("", {"text": english})

    def __bool__(self) -> bool:
        return bool(self.key or self.args.get("text"))


@dataclass(frozen=True)
class Series:
    """Several words as one Reason argument: each shown through the catalogue key `item` (with
    {name}), joined by the language's `list_separator`. Not storable: for replies only."""

    item: str
    names: tuple[str, ...]

    def text(self, lang: str | None = None) -> str:
        shown = (t(self.item, lang, name=html.escape(name)) for name in self.names)
        return t("list_separator", lang).join(shown)


class FeedbotError(Exception):
    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        key: str = "error_unknown",
        args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.key = key
        #: the catalogue arguments (`args` itself is Exception's tuple, which pickling needs)
        self.reason_args: dict[str, Any] = dict(args or {})

    @property
    def reason(self) -> Reason:
        return Reason(self.key, self.reason_args)


class FetchError(FeedbotError):
    """The feed could not be fetched. kind is one of: http, timeout, too_large, blocked,
    connect, redirects, bad_url, gone, rate_limited, tls."""

    kind = "fetch"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        key: str = "error_fetch",
        args: Mapping[str, Any] | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, kind=kind, key=key, args=args)
        self.status = status
        self.retry_after = retry_after


class BlockedAddressError(FetchError):
    """The URL points at an address the bot refuses to contact (SSRF guard)."""

    kind = "blocked"


class ParseError(FeedbotError):
    """The document is not a usable RSS/Atom/JSON feed."""

    kind = "not_a_feed"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        key: str = "error_not_feed_plain",
        args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, kind=kind, key=key, args=args)


class OptionError(FeedbotError):
    """A value given to /set or /filter was refused; `key` names the catalogue message saying
    why, `args` fill it (escaped when shown, like every Reason's)."""

    kind = "option"

    def __init__(self, key: str, /, **args: Any) -> None:
        super().__init__(f"option refused: {key}", key=key, args=args)

    def text(self) -> str:
        return self.reason.text()


class StorageWriteError(FeedbotError):
    """The database could not be written (the change was undone in memory, nothing is on disk).
    kind is one of: disk_full, read_only, io; the catalogue key is `error_storage_<kind>`."""

    kind = "io"

    @classmethod
    def from_os_error(cls, path: object, exc: OSError) -> StorageWriteError:
        kind = _STORAGE_KINDS.get(exc.errno or 0, "io")
        return cls(
            f"cannot write {path}: {exc.strerror or exc}", kind=kind, key=f"error_storage_{kind}"
        )

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
