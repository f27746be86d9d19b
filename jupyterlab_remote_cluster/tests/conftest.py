import pytest

pytest_plugins = ("pytest_jupyter.jupyter_server",)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "broken_node: start the server with a Node runtime that cannot run the agent"
    )


@pytest.fixture
def jp_server_config(request, monkeypatch):
    if request.node.get_closest_marker("broken_node"):
        monkeypatch.setenv("JUPYTERLAB_REMOTE_CLUSTER_NODE", "/bin/false")
    return {"ServerApp": {"jpserver_extensions": {"jupyterlab_remote_cluster": True}}}
