import pytest

from soorma.local.deploy import DeployError, load_app, setup_fingerprint


def test_load_app_from_folder_with_manifest(tmp_path):
    (tmp_path / "soorma.toml").write_text(
        '[app]\nname = "demo app"\n[setup]\ncommand = ["python", "ingest.py"]\n[defaults]\nbatch_size = 5\n'
    )
    (tmp_path / "workers.py").write_text("")
    (tmp_path / "ingest.py").write_text("print('x')")
    (tmp_path / "_private.py").write_text("")
    app = load_app(tmp_path)
    assert app.name == "demo-app"
    assert app.modules == ["workers"]  # the setup script and private modules are not agent modules
    assert app.setup_command == ["python", "ingest.py"]
    assert app.defaults == {"batch_size": 5}


def test_agents_py_is_preferred(tmp_path):
    (tmp_path / "agents.py").write_text("")
    (tmp_path / "helpers.py").write_text("")
    assert load_app(tmp_path).modules == ["agents"]


def test_fingerprint_changes_with_the_setup_script(tmp_path):
    (tmp_path / "soorma.toml").write_text('[setup]\ncommand = ["python", "ingest.py"]\n')
    (tmp_path / "agents.py").write_text("")
    (tmp_path / "ingest.py").write_text("a")
    first = setup_fingerprint(load_app(tmp_path))
    (tmp_path / "ingest.py").write_text("b")
    assert setup_fingerprint(load_app(tmp_path)) != first


@pytest.mark.parametrize(
    "content, message",
    [("[app\n", "soorma.toml"), ('[setup]\ncommand = "python x.py"\n', "list of strings")],
)
def test_bad_manifest_is_named(tmp_path, content, message):
    (tmp_path / "soorma.toml").write_text(content)
    (tmp_path / "agents.py").write_text("")
    with pytest.raises(DeployError, match=message):
        load_app(tmp_path)


def test_missing_path_and_non_python_file(tmp_path):
    with pytest.raises(DeployError, match="does not exist"):
        load_app(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(DeployError, match="not a Python file"):
        load_app(tmp_path / "notes.txt")
