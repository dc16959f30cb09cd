"""No false "too short to mask" warning for the ``cos`` connection's plain settings.

Every time a task fetches a connection, Airflow 3.3 reads ``Connection.extra_dejson`` (to cache the
connection's URI), which hands each extra value with its key to the secrets masker. The masker warns
"Skipping masking for a secret as it's too short (<5 chars)" for every string under 5 characters
*before* it looks at the key, although it masks a value only under a sensitive key name (``password``,
``secret``, ``token``...). A ``cos`` connection made in the UI form stores its declared defaults in
``extra``, so ``"api_version": "v1"`` (and ``"v2"``, region codes such as ``"gz"``) set the warning off
in every task, about values that are not secret and would never be masked. Our only secret, the
SecretKey, lives in the password field and is registered with the masker after the fetch, outside this
window, so a short SecretKey still gets Airflow's warning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def no_short_secret_warning() -> Iterator[None]:
    """Within the block, Airflow's once-per-process short-secret warning counts as already given; the
    previous state comes back afterwards (so a later short secret elsewhere is still reported)."""
    try:
        from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker
    except ImportError:  # another Airflow layout: nothing to quieten
        yield
        return
    flag = "_has_warned_short_secret"
    if not hasattr(SecretsMasker, flag):
        yield
        return
    before = getattr(SecretsMasker, flag)
    setattr(SecretsMasker, flag, True)
    try:
        yield
    finally:
        setattr(SecretsMasker, flag, before)
