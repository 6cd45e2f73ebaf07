"""The database schema: created and changed only by Alembic's migrations."""

from __future__ import annotations

import os
from pathlib import Path

from app.config import Settings
from app.db import get_sessionmaker
from app.services import tokens

ROOT = Path(__file__).resolve().parents[2]


def upgrade_database(settings: Settings) -> None:
    """Bring the schema to Alembic's head and make sure the bootstrap token exists."""
    from alembic import command
    from alembic.config import Config

    url = settings.effective_database_url
    if url.startswith("sqlite:///"):
        os.makedirs(
            os.path.dirname(os.path.abspath(url.removeprefix("sqlite:///"))) or ".", exist_ok=True
        )
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")
    with get_sessionmaker(url)() as session:
        tokens.ensure_bootstrap(session, settings.bootstrap_token)
