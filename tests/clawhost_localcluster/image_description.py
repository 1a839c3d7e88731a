"""The one description of each image's contents (images/<image>.json), read by the local assembly; the Nix
builds (images/*.nix) read the same files with builtins.fromJSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

REPO = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO / "images"


class DescriptionError(ValueError):
    """An image description that does not parse or validate; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ImageUser(_Strict):
    name: str
    uid: int = Field(ge=1)  # never root
    gid: int = Field(ge=1)
    home: str


class ImageDirectory(_Strict):
    path: str
    mode: str = Field(pattern=r"^[0-7]{4}$")
    owner: Literal["root", "user"]
    writable: bool  # a volume is mounted here at run time (the root filesystem is read-only)

    @property
    def mode_bits(self) -> int:
        return int(self.mode, 8)


class ImageFile(_Strict):
    path: str
    mode: str = Field(pattern=r"^[0-7]{4}$")
    text: str

    @property
    def mode_bits(self) -> int:
        return int(self.mode, 8)


class NodePin(_Strict):
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    major: int
    npm_package: str = Field(alias="npmPackage")
    integrity: str = Field(pattern=r"^sha512-")


class GatewayPins(_Strict):
    openclaw: str
    node: NodePin
    tini: str


class PlatformPins(_Strict):
    python: str = Field(pattern=r"^3\.\d+$")
    lock: str
    dependency_groups: list[str] = Field(alias="dependencyGroups")


class ImageDescription(_Strict):
    name: str
    tag: str
    contents: list[str]
    user: ImageUser
    entrypoint: list[str]
    cmd: list[str]
    working_dir: str = Field(alias="workingDir")
    env: dict[str, str]
    exposed_ports: list[str] = Field(alias="exposedPorts")
    directories: list[ImageDirectory]
    files: list[ImageFile]

    @field_validator("entrypoint")
    @classmethod
    def _absolute_entrypoint(cls, value: list[str]) -> list[str]:
        if not value or not value[0].startswith("/"):
            raise ValueError("the entrypoint starts with an absolute path (the image has no shell to search PATH)")
        return value

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def user_spec(self) -> str:
        return f"{self.user.uid}:{self.user.gid}"


class GatewayDescription(ImageDescription):
    pins: GatewayPins
    npm_project: str = Field(alias="npmProject")  # folder under images/ holding package.json + package-lock.json


class PlatformDescription(ImageDescription):
    pins: PlatformPins
    sources: dict[str, str]  # importable package -> its folder in the repository
    services: dict[str, str]  # service -> the module `python -m` runs


_Description = TypeVar("_Description", bound=ImageDescription)


def _load(path: Path, model: type[_Description]) -> _Description:
    try:
        return model.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as error:
        raise DescriptionError(f"{path}: {error}") from None
    except ValidationError as error:
        raise DescriptionError(f"{path}: {error}") from None


def load_gateway(path: Path | None = None) -> GatewayDescription:
    return _load(path or IMAGES_DIR / "gateway.json", GatewayDescription)


def load_platform(path: Path | None = None) -> PlatformDescription:
    return _load(path or IMAGES_DIR / "platform.json", PlatformDescription)
