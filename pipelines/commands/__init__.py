"""Extra ``marketlake`` subcommands: every module here exposes ``register(subparsers)``.

Each module adds its subcommands with ``set_defaults(handler=...)``; a handler takes
``(args, settings)`` and returns the exit code. The CLI discovers the modules itself.
"""
