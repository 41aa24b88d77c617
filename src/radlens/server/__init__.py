"""The HTTP service (FastAPI): ``create_app(settings)``; see ``docs/serve.md``."""
