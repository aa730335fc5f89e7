"""The migrator never reports "nothing to apply" for want of migration files: a package without them (the wheel once
left ``sql/`` out) fails at once with the reason, instead of leaving an empty database behind."""

from __future__ import annotations

import pytest

from soorma.functions.migrate import app


def test_the_package_ships_its_migrations_in_order():
    versions = [m.version for m in app.migrations()]
    assert versions[0] == 1 and versions == sorted(set(versions))


def test_a_folder_without_migrations_is_an_error_that_says_why(tmp_path):
    with pytest.raises(app.MigrationsNotFound, match="no migration files .* this installation of soorma is incomplete"):
        app.migrations(tmp_path)


@pytest.mark.parametrize("run", [app.apply, app.pending], ids=["apply", "pending"])
def test_apply_and_pending_fail_before_connecting_when_there_are_none(monkeypatch, tmp_path, run):
    monkeypatch.setattr(app, "SQL_DIR", tmp_path)
    # an address nothing listens on: the error must come before any connection attempt
    with pytest.raises(app.MigrationsNotFound, match=str(tmp_path)):
        run("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
