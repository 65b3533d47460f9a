"""What the sync and async clients share: a request spec (:class:`Call`) and the
:class:`endpoint` descriptor that runs one on either client."""

from __future__ import annotations

import asyncio
import functools
import inspect
import io
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload
from urllib.parse import quote

import numpy as np
from PIL import Image

from ..imaging import load_image

ClientImage = str | Path | bytes | bytearray | np.ndarray | Image.Image
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its JSON answer; ``None`` parts are not sent."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: Any = None
    headers: dict[str, str] | None = None

    def request_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request``."""
        parts = {
            "params": self.params,
            "json": self.json,
            "data": self.data,
            "files": self.files,
            "headers": self.headers,
        }
        return {k: v for k, v in parts.items() if v is not None}


class SyncExecutor:
    """A client whose ``_execute`` sends a call and returns its result."""

    def _execute(self, call: Call[T]) -> T:
        raise NotImplementedError


class AsyncExecutor:
    """A client whose ``_execute`` is a coroutine."""

    async def _execute(self, call: Call[T]) -> T:
        raise NotImplementedError


class endpoint(Generic[P, T]):  # lower case: used as a decorator, like property
    """A client method written once as ``build(self, ...) -> Call``: on a sync client it
    returns the result, on an async client it is a coroutine function."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.signature = _without_self(inspect.signature(build))

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> endpoint[P, T]: ...
    @overload
    def __get__(
        self, obj: AsyncExecutor, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...
    @overload
    def __get__(self, obj: SyncExecutor, owner: type | None = None) -> Callable[P, T]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        build = self.build
        if isinstance(obj, AsyncExecutor):

            async def run_async(*args: Any, **kwargs: Any) -> Any:
                # Building reads image files and encodes arrays: off the event loop.
                call = await asyncio.to_thread(build, obj, *args, **kwargs)
                return await obj._execute(call)

            return self._dress(run_async)

        def run(*args: Any, **kwargs: Any) -> Any:
            return obj._execute(build(obj, *args, **kwargs))

        return self._dress(run)

    def _dress(self, method: Callable[..., Any]) -> Callable[..., Any]:
        """Name, docstring and signature of the built method, for help() and IDEs."""
        names = ("__module__", "__name__", "__qualname__", "__doc__")
        functools.update_wrapper(method, self.build, assigned=names, updated=())
        del method.__wrapped__  # type: ignore[attr-defined]  # else inspect shows `self`
        method.__signature__ = self.signature  # type: ignore[attr-defined]
        return method


def _without_self(signature: inspect.Signature) -> inspect.Signature:
    parameters = list(signature.parameters.values())[1:]
    returns = signature.return_annotation
    if isinstance(returns, str) and returns.startswith("Call[") and returns.endswith("]"):
        returns = returns[len("Call[") : -1]
    return signature.replace(parameters=parameters, return_annotation=returns)


def image_part(image: ClientImage, name: str = "image") -> tuple[str, bytes, str]:
    """``(filename, bytes, content type)`` of an image: files and bytes go as they are;
    arrays (RGB, like the service takes them) and PIL images are encoded as PNG."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        return (path.name, path.read_bytes(), "application/octet-stream")
    if isinstance(image, (bytes, bytearray)):
        return (name, bytes(image), "application/octet-stream")
    if isinstance(image, np.ndarray):
        image = Image.fromarray(load_image(image, max_pixels=2**31))
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        (image if image.mode in ("RGB", "L", "RGBA") else image.convert("RGB")).save(buf, "PNG")
        return (f"{name}.png", buf.getvalue(), "image/png")
    raise TypeError(f"unsupported image type: {type(image).__name__}")


def seg(value: str | int) -> str:
    """One URL path segment (ids may hold '/', '?', '#'). A '.' or '..' segment is encoded too:
    URL normalisation would collapse it into the parent resource."""
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text
