"""The lake: Delta tables, topics, features and settings (no Dagster, no BentoML).

Importing any marketlake package first points the tools' homes and telemetry switches at the
state folder (:func:`warehouse.settings.contain_tools`), so nothing writes into ``$HOME``.
"""

from warehouse.settings import contain_tools

contain_tools()
