import pytest

pytest_plugins = ("pytest_jupyter.jupyter_server",)


def pytest_configure(config):
    config.addinivalue_line("markers", "broken_node: start the server with a Node runtime that cannot run the agent")
    config.addinivalue_line("markers", "node_version(v): start the server with a node that says it is version v")
    config.addinivalue_line("markers", "authorizer(cls): start the server with this Authorizer class (dotted name)")
    config.addinivalue_line("markers", "extension_config(**traits): configure RemoteClusterExtension so")


def fake_node(directory, version: str):
    """A `node` that reports `version` and fails to run anything."""
    path = directory / "node"
    path.write_text(
        f'#!/bin/sh\nif [ "$1" = --version ]; then echo {version}; exit 0; fi\n'
        'echo "fake node: cannot run $1" >&2; exit 1\n'
    )
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def jp_server_config(request, monkeypatch, tmp_path):
    if request.node.get_closest_marker("broken_node"):
        monkeypatch.setenv("JUPYTERLAB_REMOTE_CLUSTER_NODE", fake_node(tmp_path, "v24.0.0"))
    marker = request.node.get_closest_marker("node_version")
    if marker:
        monkeypatch.setenv("JUPYTERLAB_REMOTE_CLUSTER_NODE", fake_node(tmp_path, marker.args[0]))
    config = {"ServerApp": {"jpserver_extensions": {"jupyterlab_remote_cluster": True}}}
    marker = request.node.get_closest_marker("authorizer")
    if marker:
        config["ServerApp"]["authorizer_class"] = marker.args[0]
    marker = request.node.get_closest_marker("extension_config")
    if marker:
        config["RemoteClusterExtension"] = dict(marker.kwargs)
    return config
