"""Pure protocol layer of the COS JSON API: no sockets, no Airflow.

Modules: :mod:`errors` (one exception root and the code table), :mod:`signing`, :mod:`paths`,
:mod:`multipart`, :mod:`sha1parts` (uploadparts), :mod:`messages` (value types, request encoding,
envelope parsing) and :mod:`operations` (v1/v2 dialects as prepare/process pairs).
"""
