"""Crafted images for `docker load`: exact `created` dates, sizes and shared layers.

The docker-save layout: `manifest.json`, one config JSON per image (any `created`, labels,
`rootfs.diff_ids`), and uncompressed layer tars whose sha256 is the config's diff id. Same
seed and size → the same layer, so images can share layers exactly as builds do.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import docker

from gcd.core.references import parse_reference

BUSYBOX = Path("/bin/busybox")
_FIXED_MTIME = 1_600_000_000


@dataclass(frozen=True)
class Layer:
    tar: bytes = field(repr=False)
    seed: str

    @property
    def diff_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.tar).hexdigest()


@dataclass(frozen=True)
class ImageSpec:
    layers: tuple[Layer, ...]
    tags: tuple[str, ...]
    created: datetime
    labels: Mapping[str, str]

    def config(self) -> bytes:
        body = {
            "architecture": "amd64",
            "os": "linux",
            "created": _rfc3339(self.created),
            "config": {"Labels": dict(self.labels) or None, "Cmd": ["sh"], "Env": []},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            # As a build writes it: one entry per layer, then an empty-layer CMD entry.
            "history": [
                *(
                    {"created": _rfc3339(self.created), "created_by": f"COPY {layer.seed} /"}
                    for layer in self.layers
                ),
                {"created": _rfc3339(self.created), "created_by": "CMD sh", "empty_layer": True},
            ],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _rfc3339(when: datetime) -> str:
    """Exact to the microsecond; years below 1000 keep their four digits (0001-01-01)."""
    if when.tzinfo is None:
        raise ValueError(f"created must be an aware datetime, got {when!r}")
    moment = when.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}Z"


def _tar(files: Mapping[str, bytes], symlinks: Mapping[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        symlinks = symlinks or {}
        directories = sorted({str(Path(p).parent) for p in [*files, *symlinks]} - {"."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _FIXED_MTIME
            tar.addfile(info)
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o755, _FIXED_MTIME
            tar.addfile(info, io.BytesIO(content))
        for name, target in sorted(symlinks.items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, _FIXED_MTIME
            tar.addfile(info)
    return buffer.getvalue()


@cache
def layer(size_bytes: int, seed: str) -> Layer:
    """One file of exactly `size_bytes` deterministic bytes."""
    block = hashlib.sha256(seed.encode()).digest()
    content = (block * (size_bytes // len(block) + 1))[:size_bytes]
    return Layer(_tar({f"data/{hashlib.sha1(seed.encode()).hexdigest()}": content}), seed)


@cache
def runnable_layer() -> Layer:
    """busybox as /bin/sh, /bin/sleep, /bin/true: enough for containers that run."""
    links = {f"bin/{tool}": "busybox" for tool in ("sh", "sleep", "true")}
    return Layer(_tar({"bin/busybox": BUSYBOX.read_bytes()}, links), "busybox")


def image(
    *layers: Layer,
    tags: tuple[str, ...] = (),
    created: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    labels: Mapping[str, str] | None = None,
) -> ImageSpec:
    return ImageSpec(tuple(layers), tags, created, labels or {})


def image_id(spec: ImageSpec) -> str:
    """The config digest: the id on a graphdriver engine and on Podman, not on the containerd
    image store (`load` returns what the engine says)."""
    return "sha256:" + hashlib.sha256(spec.config()).hexdigest()


def archive(*specs: ImageSpec) -> bytes:
    """One docker-save tarball holding all `specs`."""
    files: dict[str, bytes] = {}
    manifest = []
    for spec in specs:
        config = spec.config()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        files[config_name] = config
        layer_names = []
        for item in spec.layers:
            name = item.diff_id.removeprefix("sha256:") + "/layer.tar"
            files[name] = item.tar
            layer_names.append(name)
        manifest.append(
            {
                "Config": config_name,
                # Fully qualified, as `podman save` writes them: Docker shows `app:1` all the
                # same, and Podman names the image as if pulled from Docker Hub, not
                # `localhost/app:1` (what it calls images loaded with short names).
                "RepoTags": [str(parse_reference(tag)) for tag in spec.tags] or None,
                "Layers": layer_names,
            }
        )
    files["manifest.json"] = json.dumps(manifest).encode()
    return _tar(files)


def load(api: docker.APIClient, *specs: ImageSpec) -> list[str]:
    """Load all specs in one `POST /images/load`; returns the ids the engine gave them.

    A graphdriver engine and Podman name an image by its config digest (`image_id`); the
    containerd image store by the digest of the manifest it writes on import. The load's
    `Loaded image ID:` lines come in the archive's order: a graphdriver engine prints one per
    image as soon as one is untagged, the containerd store one per untagged image, Podman
    none (its ids are config digests). A tagged image's id is looked up by its first tag."""
    loaded: list[str] = []
    for message in api.load_image(archive(*specs)):  # a stream: the load ends with it
        if isinstance(message, dict) and message.get("error"):
            raise RuntimeError(f"docker load failed: {message['error']}")
        text = message.get("stream", "") if isinstance(message, dict) else ""
        loaded += [
            line.removeprefix("Loaded image ID:").strip()
            for line in str(text).splitlines()
            if line.startswith("Loaded image ID:")
        ]
    if len(loaded) == len(specs):
        return loaded
    remaining = iter(loaded)
    ids = []
    for spec in specs:
        if spec.tags:
            ids.append(str(api.inspect_image(spec.tags[0])["Id"]))
        else:
            ids.append(next(remaining, None) or image_id(spec))
    return ids


def _blob(files: dict[str, bytes], content: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(content).hexdigest()
    files[f"blobs/sha256/{digest}"] = content
    return {"digest": f"sha256:{digest}", "size": len(content)}


def multi_platform_archive(tag: str, variants: Mapping[str, ImageSpec]) -> tuple[bytes, str]:
    """An OCI layout tarball of one image index with a manifest per platform (`"linux/arm64":
    spec`), and the index's digest: the image's id on the containerd image store."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    manifests = []
    for platform, spec in variants.items():
        os_name, architecture = platform.split("/")
        config = json.loads(spec.config())
        config["architecture"], config["os"] = architecture, os_name
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                **_blob(files, json.dumps(config, sort_keys=True).encode()),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", **_blob(files, item.tar)}
                for item in spec.layers
            ],
        }
        manifests.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_blob(files, json.dumps(manifest, sort_keys=True).encode()),
                "platform": {"architecture": architecture, "os": os_name},
            }
        )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }
    top = _blob(files, json.dumps(index, sort_keys=True).encode())
    reference = str(parse_reference(tag))
    files["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    **top,
                    "annotations": {
                        "io.containerd.image.name": reference,
                        "org.opencontainers.image.ref.name": reference.rpartition(":")[2],
                    },
                }
            ],
        }
    ).encode()
    return _tar(files), str(top["digest"])
