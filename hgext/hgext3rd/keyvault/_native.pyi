# The types of the native module (rust/keyvault-py), for the type checker. Kept in step with
# the module by tests/test_native_stub.py (mypy's stubtest compares every name and signature
# here with the built module).

import builtins
from typing import Literal, TypedDict, final

__all__ = [
    "__version__",
    "KeyVaultError",
    "BadRefError",
    "ConfigError",
    "NotFoundError",
    "ForbiddenError",
    "DisabledError",
    "ExpiredError",
    "UnauthenticatedError",
    "UnreachableError",
    "VaultTimeoutError",
    "ThrottledError",
    "ServiceError",
    "Vault",
    "ci_job",
    "TokenSession",
    "parse_ref",
    "secret_name",
    "match_auth_group",
    "explain_auth_groups",
    "providers",
    "check_needs",
]

__version__: str

# The dicts the binding builds (rust/keyvault-py/src/convert.rs), named here only (private: no
# such class exists at runtime). Times are Unix epoch seconds.

class _Properties(TypedDict):
    state: str
    readable: bool
    ref: str | None
    name: str
    version: str | None
    id: str | None
    enabled: bool
    expires: float | None
    not_before: float | None
    created: float | None
    updated: float | None
    content_type: str | None
    tags: dict[str, str]

class _ReadProperties(_Properties):
    request_id: str | None
    source: Literal["vault", "secret-cache"]
    cached_for: float | None

class _CheckedProperties(_Properties):
    request_id: str | None

class _StoreInfo(TypedDict):
    provider: str
    location: str
    detail: str | None
    label: str
    location_key: str
    credential: str | None

class _Deleted(TypedDict):
    name: str
    recoverable: bool
    scheduled_purge: float | None
    request_id: str | None

class _CopyOutcome(TypedDict):
    copied: bool
    source: _Properties
    target: _Properties
    request_id: str | None

class _IdentityInfo(TypedDict, total=False):
    link: str
    link_id: str | None
    via: str | None
    # The store's id names, in the order to show them; each is a key of this dict too.
    ids: list[str]
    # Key Vault's ids.
    tenant_id: str | None
    client_id: str | None
    object_id: str | None
    # AWS's ids (sts:GetCallerIdentity, the profile).
    caller_arn: str | None
    account: str | None
    user_id: str | None
    profile: str | None

class _CacheStatus(TypedDict):
    token_cache: Literal["kernel-keyring", "process"] | None
    token_source: Literal["cache", "fetched"] | None
    token_fresh_until: float | None
    secret_cache_ttl: float | None
    secret_cache_unavailable: bool

class _TokenInfo(TypedDict):
    expires_on: float
    fresh_until: float
    source: Literal["cache", "entra"]
    tenant_id: str | None
    client_id: str | None
    object_id: str | None
    aud: str | None
    iss: str | None
    version: Literal["v1", "v2"] | None
    identity: _IdentityInfo | None

class KeyVaultError(Exception):
    kind: str
    message: str
    hint: str | None
    request_id: str | None
    # disabled, expired or not yet valid when a read refused the secret for its state.
    state: str | None

class BadRefError(KeyVaultError): ...
class ConfigError(KeyVaultError): ...
class NotFoundError(KeyVaultError): ...
class ForbiddenError(KeyVaultError): ...
class DisabledError(KeyVaultError): ...
class ExpiredError(KeyVaultError): ...
class UnauthenticatedError(KeyVaultError): ...
class UnreachableError(KeyVaultError): ...
class VaultTimeoutError(KeyVaultError): ...
class ThrottledError(KeyVaultError): ...
class ServiceError(KeyVaultError): ...

@final
class Vault:
    def __new__(
        cls,
        url: str,
        *,
        credential: str = "auto",
        cacerts: str | None = None,
        verify_challenge_resource: bool = True,
        timeout: float = 10.0,
        name_prefix: str = "hg-",
        user_agent: str | None = None,
        token_cache: bool = True,
        secret_cache: float = 0.0,
        expiry_warning: float = 14.0,
        id_token_env: str | None = None,
    ) -> Vault: ...
    @staticmethod
    def keyring(
        *,
        keyring: str = "auto",
        timeout: float = 10.0,
        name_prefix: str = "hg-",
        expiry_warning: float = 14.0,
    ) -> Vault: ...
    @staticmethod
    def open(
        provider: str,
        *,
        url: str | None = None,
        credential: str = "auto",
        cacerts: str | None = None,
        verify_challenge_resource: bool = True,
        timeout: float = 10.0,
        name_prefix: str = "hg-",
        user_agent: str | None = None,
        token_cache: bool = True,
        secret_cache: float = 0.0,
        expiry_warning: float = 14.0,
        id_token_env: str | None = None,
        keyring: str = "auto",
        aws_region: str | None = None,
        aws_profile: str | None = None,
    ) -> Vault: ...
    @property
    def provider(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    def info(self) -> _StoreInfo: ...
    def get(self, secret_ref: str, version: str | None = None) -> tuple[bytes, _ReadProperties]: ...
    def check_many(
        self, secret_refs: builtins.list[str]
    ) -> builtins.list[_CheckedProperties | KeyVaultError]: ...
    def cache_status(self) -> _CacheStatus | None: ...
    def cached_for(self, secret_ref: str) -> float | None: ...
    def forget_cached(self, secret_ref: str) -> None: ...
    def check(self, secret_ref: str) -> _CheckedProperties: ...
    def copy_from(self, source: Vault, secret_ref: str) -> _CopyOutcome: ...
    def set(
        self,
        secret_ref: str,
        value: bytes,
        *,
        expires: float | None = None,
        tags: dict[str, str] | None = None,
    ) -> _CheckedProperties: ...
    def delete(self, secret_ref: str) -> _Deleted: ...
    def name_of(self, secret_ref: str) -> str: ...
    def properties(self, secret_ref: str) -> _Properties: ...
    def versions(self, secret_ref: str) -> builtins.list[_Properties]: ...
    def ping(self) -> None: ...
    def list(self) -> builtins.list[_Properties]: ...
    def identity(self) -> _IdentityInfo | None: ...
    def selected_link(self) -> str | None: ...
    def identity_applies(self) -> bool: ...

@final
class TokenSession:
    def __new__(
        cls,
        *,
        credential: str = "auto",
        cacerts: str | None = None,
        timeout: float = 10.0,
        user_agent: str | None = None,
        token_cache: bool = True,
        id_token_env: str | None = None,
    ) -> TokenSession: ...
    def token(self, scope: str) -> tuple[str, _TokenInfo]: ...
    def forget(self, scope: str, token: str) -> None: ...

class _CiJob(TypedDict):
    system: str
    id: str
    describe: str

def ci_job() -> _CiJob | None: ...
def providers() -> list[tuple[str, list[str]]]: ...
def check_needs(provider: str, set_options: list[str]) -> None: ...
def parse_ref(text: str) -> str: ...
def secret_name(secret_ref: str, prefix: str = "hg-") -> str: ...
def match_auth_group(
    url: str, groups: list[tuple[str, list[str], str | None]], user: str | None = None
) -> int | None: ...
def explain_auth_groups(
    url: str, groups: list[tuple[str, list[str], str | None]], user: str | None = None
) -> list[tuple[bool, str]]: ...
