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

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from radlens.errors import ConfigError
from radlens.privacy.roles import Role

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
    poll_interval_s: float = Field(default=0.2, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    models: tuple[Path, ...] = Field(default=(), description="extra model folders")
    threads: int = Field(default=1, ge=1, description="ONNX Runtime threads per worker")
    # Scale-out (docs/scaling.md): the job workers run each analysis on a Dask cluster.
    engine: Literal["local", "dask"] = Field(
        default="local", description="where analyses run: local worker threads, or dask"
    )
    dask_address: str = Field(
        default="",
        description="Dask scheduler, tcp://HOST:8786; '' with engine dask: a local cluster",
    )
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
    session_idle_minutes: float = Field(
        default=15.0, gt=0, description="automatic logoff: a session unused this long ends"
    )
    login_max_failures: int = Field(
        default=5, ge=1, description="failed logins of one name before it is locked"
    )
    login_max_failures_ip: int = Field(
        default=20, ge=1, description="failed logins from one client address before it is locked"
    )
    login_lockout_s: float = Field(
        default=30.0, gt=0, description="first lockout; doubles with each further failure"
    )
    oidc_issuer: str = Field(default="", description="OIDC issuer URL; '' = no OIDC login")
    oidc_client_id: str = Field(default="", description="radlens's client id at the provider")
    oidc_client_secret: SecretStr = Field(default=SecretStr(""), description="never logged")
    oidc_redirect_url: str = Field(
        default="", description="callback URL registered at the provider; '' = from the request"
    )
    oidc_scope: str = Field(default="openid profile email", description="scopes asked for")
    oidc_username_claim: str = Field(
        default="preferred_username", description="ID token claim that names the account"
    )
    oidc_role_claim: str = Field(
        default="roles", description="ID token claim with the user's groups or roles"
    )
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict,
        description="claim value -> radlens role (admin, radiologist, technologist, researcher)",
    )
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
    # Feedback (docs/feedback.md): adjudication of several readers, drift alerts.
    adjudication_rule: Literal["majority", "senior"] = Field(
        default="majority",
        description="readers' votes -> the label: majority (a tie is unresolved) or senior",
    )
    senior_readers: tuple[str, ...] = Field(
        default=(), description="account names whose votes decide under the senior rule"
    )
    drift_psi_alert: float = Field(
        default=0.2, gt=0, description="OOD drift alert at this PSI (with a significant G-test)"
    )
    drift_min_images: int = Field(
        default=30, ge=5, description="images a model version or scanner needs to be judged"
    )
    # Model change control (docs/learning.md): versions, the evaluation gate, promotion.
    model_store: Path | None = Field(
        default=None, description="site model versions (radlens learn); default home/models"
    )
    auto_promote: bool = Field(
        default=False,
        description="site policy: promote a learned version that passed the gate at once",
    )
    gate_auc_margin: float = Field(
        default=0.005, ge=0, le=0.1, description="locked-set AUC a candidate may lose"
    )
    gate_ece_margin: float = Field(
        default=0.01, ge=0, le=0.1, description="locked-set ECE a candidate may gain"
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
    # Encryption at rest (docs/privacy.md): the key ring, from key_file, else
    # encryption_key, else home/keys/radlens.keys (made at the first start unless production).
    key_file: Path | None = Field(default=None, description="encryption key ring file (0600)")
    encryption_key: SecretStr = Field(
        default=SecretStr(""), description="a key (64 hex digits) or a key ring; never logged"
    )
    audit_site_id: str = Field(
        default="radlens", max_length=64, description="AuditEnterpriseSiteID of audit records"
    )
    audit_syslog: str = Field(
        default="", description="forward audit records (RFC 5424) to host:port; '' = off"
    )
    audit_syslog_protocol: Literal["udp", "tcp"] = Field(
        default="udp", description="syslog transport (TCP frames by octet count, RFC 6587)"
    )
    # Transport security (docs/serve.md, "HTTPS and DICOM TLS"). Certificate files are PEM.
    tls_cert_file: Path | None = Field(
        default=None, description="HTTPS server certificate (chain); setting it turns HTTPS on"
    )
    tls_key_file: Path | None = Field(default=None, description="its private key (PEM)")
    tls_ca_file: Path | None = Field(
        default=None, description="HTTPS clients must present a certificate from this CA"
    )
    http_redirect_port: int | None = Field(
        default=None, ge=0, le=65535, description="plain HTTP port that only redirects to HTTPS"
    )
    allow_plain_http: bool = Field(
        default=False,
        description="production: serve plain HTTP on a network address (a TLS proxy in front)",
    )
    dicom_tls_enabled: bool = Field(default=False, description="DICOM TLS listener")
    dicom_tls_port: int = Field(
        default=2762, ge=0, le=65535, description="DICOM TLS port (2762: IANA dicom-tls)"
    )
    dicom_tls_only: bool = Field(default=False, description="no plain DICOM port, TLS only")
    dicom_tls_cert_file: Path | None = Field(
        default=None, description="DICOM TLS certificate; default tls_cert_file"
    )
    dicom_tls_key_file: Path | None = Field(
        default=None, description="its private key; default tls_key_file"
    )
    dicom_tls_ca_file: Path | None = Field(
        default=None, description="DICOM TLS peers must present a certificate from this CA"
    )
    pacs_ca_file: Path | None = Field(
        default=None, description="trust the PACS's HTTPS certificate from this CA only"
    )
    pacs_client_cert_file: Path | None = Field(
        default=None, description="client certificate for a PACS that asks for one"
    )
    pacs_client_key_file: Path | None = Field(default=None, description="its private key")

    @field_validator("oidc_role_map")
    @classmethod
    def _valid_role_map(cls, value: dict[str, str]) -> dict[str, str]:
        roles = {role.value for role in Role}
        if unknown := sorted(set(value.values()) - roles):
            raise ValueError(f"unknown role(s) {unknown}; choose from {sorted(roles)}")
        return value

    @field_validator("ae_title")
    @classmethod
    def _valid_ae_title(cls, value: str) -> str:
        title = value.strip()
        if not _AE_TITLE.match(title):
            raise ValueError("AE title must be 1-16 printable characters without '\\'")
        return title

    @model_validator(mode="after")
    def _tls_files_complete(self) -> Settings:
        if self.tls_cert_file is None and (self.tls_key_file or self.tls_ca_file):
            raise ValueError("tls_key_file and tls_ca_file need tls_cert_file (HTTPS)")
        if self.tls_cert_file is None and self.http_redirect_port is not None:
            raise ValueError("http_redirect_port redirects to HTTPS: set tls_cert_file")
        if self.dicom_tls_enabled and self.dicom_tls_cert is None:
            raise ValueError("dicom_tls_enabled needs dicom_tls_cert_file or tls_cert_file")
        if self.dicom_tls_only and not self.dicom_tls_enabled:
            raise ValueError("dicom_tls_only needs dicom_tls_enabled")
        if self.pacs_client_key_file and not self.pacs_client_cert_file:
            raise ValueError("pacs_client_key_file needs pacs_client_cert_file")
        return self

    @property
    def dicom_tls_cert(self) -> Path | None:
        """The DICOM TLS certificate: its own, or the HTTPS one."""
        return self.dicom_tls_cert_file or self.tls_cert_file

    @property
    def dicom_tls_key(self) -> Path | None:
        """The DICOM TLS key, paired with :attr:`dicom_tls_cert`."""
        if self.dicom_tls_cert_file is not None:
            return self.dicom_tls_key_file
        return self.tls_key_file

    @property
    def storage_dir(self) -> Path:
        return (self.storage or self.home / "storage").expanduser()

    @property
    def model_store_dir(self) -> Path:
        """Where the site keeps every version of its models (``radlens.models.versions``)."""
        return (self.model_store or self.home / "models").expanduser()

    @property
    def card_folders(self) -> tuple[Path, ...]:
        """Where model cards are read besides the zoo (``feedback.cards.known_cards``): the
        extra model folders and the model store, so retired versions are found too."""
        return (*self.models, self.model_store_dir)

    @property
    def default_key_file(self) -> Path:
        """Where the embedded default keeps its key ring (outside the storage folder)."""
        return self.home.expanduser() / "keys" / "radlens.keys"

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
