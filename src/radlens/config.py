"""``Settings``: the one configuration object of the service (``radlens serve``).

Precedence, lowest first: defaults < ``radlens.toml`` < ``RADLENS_*`` environment
variables < keyword arguments (the CLI flags)::

    settings = Settings(dicom_port=4242)          # flags win over everything

The TOML file is ``config_file`` when given (flag or ``RADLENS_CONFIG_FILE``), otherwise
``<home>/radlens.toml`` when it exists. Its keys are the field names (``dicom_port = 4242``).
Settings are created only in ``cli/`` and ``server/app.py:create_app`` and passed down.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from radlens.errors import ConfigError

CONFIG_FILE_NAME = "radlens.toml"
# PS3.8 9.3.1: an AE title is 1-16 characters of the Default Character Repertoire, no
# backslash or control characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def _default_home() -> Path:
    return Path.home() / ".radlens"


class Settings(BaseSettings):
    """Everything ``radlens serve`` needs to know; see ``docs/serve.md``.

    Example:
        >>> Settings(home=Path("/tmp/rl")).database_url
        'sqlite:////tmp/rl/radlens.sqlite'
    """

    model_config = SettingsConfigDict(env_prefix="RADLENS_", extra="forbid", frozen=True)

    home: Path = Field(default_factory=_default_home, description="data folder")
    config_file: Path | None = Field(default=None, description="TOML settings file")
    db: str = Field(default="", description="SQLAlchemy URL; '' = SQLite file under home")
    storage: Path | None = Field(default=None, description="instance files; default home/storage")
    ae_title: str = Field(default="RADLENS", description="DICOM Application Entity title")
    dicom_port: int = Field(default=11112, ge=0, le=65535)
    dicom_enabled: bool = True
    host: str = Field(default="127.0.0.1", description="bind address; loopback by default")
    port: int = Field(default=8000, ge=0, le=65535)
    quiet_period_s: float = Field(default=10.0, ge=0, description="study complete after")
    workers: int = Field(default=1, ge=0, description="analysis worker threads; 0 = none")
    poll_interval_s: float = Field(default=0.5, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    models: tuple[Path, ...] = Field(default=(), description="extra model folders")
    threads: int = Field(default=1, ge=1, description="ONNX Runtime threads per worker")
    pacs_url: str = Field(default="", description="PACS DICOMweb base URL; '' = no PACS")
    pacs_username: str = Field(default="", description="PACS HTTP basic auth user")
    pacs_password: SecretStr = Field(default=SecretStr(""), description="never logged")
    pacs_poll_seconds: float = Field(default=30.0, gt=0, description="QIDO-RS poll period")
    pacs_push_results: bool = Field(
        default=False, description="STOW-RS overlays, SR, Parametric Maps and SEGs back"
    )
    pacs_lookback_days: int = Field(
        default=2, ge=0, description="QIDO-RS asks for studies dated this many days back; 0 = all"
    )
    site_name: str = Field(
        default="radlens site",
        max_length=64,
        pattern=r"^[^\\\x00-\x1f]+$",  # LO: no backslash, no control characters
        description="Verifying Organization of signed report SRs (DICOM LO, 64 characters)",
    )
    production: bool = Field(
        default=False, description="production mode: no account is ever created for you"
    )
    session_hours: float = Field(default=12.0, gt=0, description="a login lasts this long")
    critical_labels: tuple[str, ...] = Field(
        default=("pneumonia", "pneumothorax", "fracture", "hemorrhage"),
        description="finding codes that make a study urgent at this site",
    )
    ood_penalty: float = Field(
        default=0.5, ge=0, le=1, description="triage score taken off a low-trust finding"
    )
    aging_minutes: float = Field(
        default=60.0, gt=0, description="waiting this long adds one priority level to the score"
    )

    max_upload_bytes: int = Field(
        default=1024**3, ge=1024, description="STOW-RS request body cap; larger gets 413"
    )
    max_instance_bytes: int = Field(
        default=1024**3, ge=1024, description="one received instance (C-STORE data set, STOW part)"
    )
    max_pixel_bytes: int = Field(
        default=1024**3, ge=1024, description="decoded pixels of one instance, checked at intake"
    )
    max_sequence_depth: int = Field(default=64, ge=8, le=512, description="sequence nesting cap")
    dicom_max_pdu_bytes: int = Field(
        default=16382, ge=4096, le=2**26, description="largest P-DATA PDU the SCP accepts"
    )
    dicom_max_associations: int = Field(default=16, ge=1, description="concurrent C-STORE peers")
    audit_site_id: str = Field(
        default="radlens", max_length=64, description="AuditEnterpriseSiteID of audit records"
    )
    audit_syslog: str = Field(
        default="", description="forward audit records (RFC 5424) to host:port; '' = off"
    )
    audit_syslog_protocol: Literal["udp", "tcp"] = Field(
        default="udp", description="syslog transport (TCP frames by octet count, RFC 6587)"
    )

    @field_validator("ae_title")
    @classmethod
    def _valid_ae_title(cls, value: str) -> str:
        title = value.strip()
        if not _AE_TITLE.match(title):
            raise ValueError("AE title must be 1-16 printable characters without '\\'")
        return title

    @property
    def storage_dir(self) -> Path:
        return (self.storage or self.home / "storage").expanduser()

    @property
    def database_url(self) -> str:
        return self.db or f"sqlite:///{self.home.expanduser() / 'radlens.sqlite'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the TOML file that the higher-priority sources point at (or home's)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole table

    def __call__(self) -> dict[str, Any]:
        state = self.current_state
        explicit = state.get("config_file")
        home = Path(state.get("home") or _default_home()).expanduser()
        path = Path(explicit).expanduser() if explicit else home / CONFIG_FILE_NAME
        if not path.is_file():
            if explicit:
                raise ConfigError(f"{path}: settings file not found")
            return {}
        try:
            values = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read settings: {exc}") from exc
        return values


def load_settings(**flags: Any) -> Settings:
    """``Settings`` from all sources, with the CLI flags that were given (None = not given).

    Raises:
        ConfigError: a value that cannot work (named, with the reason).
    """
    from pydantic import ValidationError

    given = {key: value for key, value in flags.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from exc
