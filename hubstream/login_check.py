"""One login to the Event Hubs Kafka endpoint at startup, so a refused key or token stops the command with a reason.

librdkafka treats a refused SASL login like a network problem: it reports it to the error callback and retries
forever, so a producer API would answer 503s and a worker would sit idle. ``check_login`` connects once with the
client's own configuration, bounded by ``eventhubs.check_login_timeout_s``:

- the broker refused the login → ``BrokerLoginError`` naming the mechanism, the connection string's policy or the
  token's audience, and what to check;
- no token from the credential → ``EntraTokenError`` (before any connection is made);
- the broker did not answer in time → a warning, and the command goes on (librdkafka keeps retrying; the broker
  may just be starting).

A login that worked is remembered for the process (per bootstrap, mechanism and secret), so the producer,
consumer and admin clients of one command log in once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from hubstream.errors import BrokerLoginError
from hubstream.settings import Settings

log = logging.getLogger(__name__)

_REFUSED = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
_checked: set[str] = set()
_lock = threading.Lock()


def check_login(settings: Settings, config: dict[str, Any]) -> None:
    """Log in once with ``config`` (an eventhubs client configuration) unless this process already did."""
    key = _login_key(config)
    with _lock:
        if key in _checked:
            return
    oauth_cb = config.get("oauth_cb")
    token = oauth_cb.credential.get_token(oauth_cb.scope).token if oauth_cb is not None else None
    refused = _connect(config, settings.eventhubs.check_login_timeout_s)
    if refused is None:
        with _lock:
            _checked.add(key)
        return
    raise BrokerLoginError(_explain(config, refused, token))


def _connect(config: dict[str, Any], timeout_s: float) -> KafkaError | None:
    """None once the broker answered a metadata request; the refusal if it refused the login."""
    errors: list[KafkaError] = []
    conf: dict[str, Any] = {**config, "error_cb": errors.append}
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            admin.list_topics(timeout=min(0.25, remaining))
            return None
        except KafkaException:
            pass  # no answer yet; the error callback says why
        admin.poll(0.05)
        refused = next((error for error in errors if error.code() in _REFUSED), None)
        if refused is not None:
            return refused
    last = errors[-1].str() if errors else "no answer"
    log.warning(
        "could not log in to %s within %.0f s (%s); going on, the Kafka client keeps retrying",
        config.get("bootstrap.servers"),
        timeout_s,
        last,
    )
    return None


def _explain(config: dict[str, Any], refused: KafkaError, token: str | None) -> str:
    where = config.get("bootstrap.servers")
    said = refused.str()
    if config.get("sasl.mechanism") == "OAUTHBEARER":
        claims = _claims(token or "")
        return (
            f"the broker at {where} refused the Entra ID token (SASL OAUTHBEARER) for scope "
            f"{config['oauth_cb'].scope}: token audience {claims.get('aud')!r}, issuer {claims.get('iss')!r}; "
            f"the broker said: {said}. The audience must be https://<namespace-host> of the namespace you connect "
            "to (HUBSTREAM_EVENTHUBS__NAMESPACE), the issuer that namespace's tenant, and the identity needs the "
            "Azure Event Hubs Data Sender / Data Receiver role"
        )
    policy = _policy(str(config.get("sasl.password", "")))
    return (
        f"the broker at {where} refused the connection string (SASL PLAIN, SharedAccessKeyName={policy}): {said}. "
        "Check SharedAccessKey in HUBSTREAM_EVENTHUBS__CONNECTION_STRING: copy the connection string again "
        "(Event Hubs namespace > Shared access policies), and check the policy has Send and Listen"
    )


def _login_key(config: dict[str, Any]) -> str:
    secret = str(config.get("sasl.password", "")) or getattr(config.get("oauth_cb"), "scope", "")
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return f"{config.get('bootstrap.servers')}|{config.get('sasl.mechanism')}|{digest}"


def _policy(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "sharedaccesskeyname":
            return value.strip()
    return "?"


def _claims(token: str) -> dict[str, Any]:
    """The token's claims, unverified: only to say which audience and issuer were refused."""
    try:
        payload = token.split(".")[1]
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims
    except (IndexError, ValueError):
        return {}
