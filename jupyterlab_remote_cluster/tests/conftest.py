import pytest

pytest_plugins = ("pytest_jupyter.jupyter_server",)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "broken_node: start the server with a Node runtime that cannot run the agent"
    )
    config.addinivalue_line("markers", "authorizer(cls): start the server with this Authorizer class (dotted name)")
    config.addinivalue_line("markers", "extension_config(**traits): configure RemoteClusterExtension so")


@pytest.fixture
def jp_server_config(request, monkeypatch):
    if request.node.get_closest_marker("broken_node"):
        monkeypatch.setenv("JUPYTERLAB_REMOTE_CLUSTER_NODE", "/bin/false")
    config = {"ServerApp": {"jpserver_extensions": {"jupyterlab_remote_cluster": True}}}
    marker = request.node.get_closest_marker("authorizer")
    if marker:
        config["ServerApp"]["authorizer_class"] = marker.args[0]
    marker = request.node.get_closest_marker("extension_config")
    if marker:
        config["RemoteClusterExtension"] = dict(marker.kwargs)
    return config
