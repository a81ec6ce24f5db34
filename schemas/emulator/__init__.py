"""The local Azure Schema Registry: the data-plane API the official SDK uses, over HTTPS, backed by SQLite.

``SchemaRegistryClient`` and ``AvroEncoder`` work against it unchanged, given the local CA
(``connection_verify=<state-dir>/tls/ca.pem``) and any token (``StaticTokenCredential``).

    groups.py        schema groups: format, compatibility mode, the ``--groups`` TOML file
    store.py         SQLite store (groups, versions); one writer at a time, durable on 204
    admission.py     what a group accepts: its format, a parseable schema, its compatibility mode
    routes.py        Azure's paths, matched case-insensitively, segments percent-decoded
    azure_api.py     the six operations the SDK calls
    admin_api.py     ``/$hubstream/groups``: create and list groups (Azure does that in the portal)
    app.py           FastAPI factory: routes, optional bearer check, one error handler
    entra_auth.py    ``--entra-jwks``: only Entra ID tokens for https://eventhubs.azure.net (signature, issuer, aud)
    errors.py        Azure-shaped errors (status, ``x-ms-error-code``, message)
    admin_client.py  HTTPS client for the admin API (the CLI and tests use it)
    server.py        runs the app under uvicorn with the local CA's certificate

Behaviour where Azure's is not documented, or could not be observed, chosen here:

- Unknown group: 404 ItemNotFound, as in Azure, where groups exist only once created in the
  portal. Silently creating it would hide a mistyped group name until the code meets real Azure.
  The default group (setting ``registry.group``, Avro, Backward) always exists.
- Incompatible schema: 400 ``IncompatibleSchema``, naming each field and the rule it breaks. Not 409:
  the SDK turns 409 into ``ResourceExistsError``, which callers commonly catch as "already registered".
- Invalid schema text: 400 ``InvalidSchema`` with fastavro's reason. A format other than the group's:
  415 ``InvalidSchemaType``. Compatibility is enforced for Avro groups only, as in Azure.
- Matching content: register returns the latest version when the text equals it exactly, otherwise
  adds a version (even if an older version has that text); get-id returns the newest version whose
  text is exactly equal. No normalisation of whitespace or key order.
- Compatibility modes ``Full``, ``BackwardTransitive``, ``ForwardTransitive`` and ``FullTransitive`` are a
  hubstream extension; Azure offers ``None``, ``Backward`` and ``Forward``.

Nothing is imported here, so the CLI's client commands do not load FastAPI or uvicorn.
"""
