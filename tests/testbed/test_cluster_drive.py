"""The cluster drive (issue 13, item 1) on the testbed's login node, through the agent's
routes as JupyterLab's file browser calls them: files over SFTP on the cluster's SSH
connection, saved atomically with their mode kept, a failed save leaving the old file and
no temporary behind, a 50 MiB upload in JupyterLab's 1 MiB pieces arriving whole and never
visible half-written, a download streamed back, symbolic links followed. (A notebook of the
drive running in its folder: ui-tests/tests/cluster-files.spec.ts.) What is checked
on the cluster is checked there, with the login node's own tools (`testbed exec`)."""

import base64
import contextlib
import hashlib
import os
import random
from urllib.parse import quote

from jupyter_core.utils import run_sync

from .conftest import agent_call, on_login

FILES = "/api/v1/profiles/testbed/files"


@contextlib.contextmanager
def cluster_dir():
    """A fresh folder in alice's home on the cluster (removed after, also if read-only)."""
    name = f"rc-drive-{os.getpid()}-{random.randrange(10**6)}"
    on_login("mkdir", name)
    try:
        yield name
    finally:
        on_login("sh", "-c", f"chmod -R u+w {name}; rm -rf {name}")


def url(path: str, **query) -> str:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return FILES + "/" + "/".join(quote(s, safe="") for s in path.split("/")) + ("?" + q if q else "")


def sh(script: str) -> str:
    return on_login("sh", "-c", script)


def save_text(path: str, text: str) -> tuple[int, dict]:
    return agent_call("PUT", url(path), {"type": "file", "format": "text", "content": text})


def test_a_file_is_listed_opened_and_saved_atomically_with_its_mode(jupyter_dirs):
    with cluster_dir() as d:
        sh(f"cd {d} && printf 'old\\n' > notes.txt && chmod 640 notes.txt && touch .hidden && mkdir sub")
        inode_before = sh(f"stat -c %i {d}/notes.txt").strip()

        code, listing = agent_call("GET", url(d))
        assert code == 200 and listing["type"] == "directory", listing
        entries = {e["name"]: e["type"] for e in listing["content"]}
        assert entries == {"notes.txt": "file", "sub": "directory"}  # (dot files are not listed)

        code, f = agent_call("GET", url(f"{d}/notes.txt"))
        assert code == 200 and (f["format"], f["content"], f["size"]) == ("text", "old\n", 4), f

        code, saved = save_text(f"{d}/notes.txt", "new text ✓\n")
        assert code == 200 and saved["content"] is None and saved["size"] == len("new text ✓\n".encode()), saved
        assert sh(f"cat {d}/notes.txt") == "new text ✓\n"
        assert sh(f"stat -c %a {d}/notes.txt").strip() == "640"  # the mode is kept
        # replaced by a rename (a new inode), never rewritten in place; nothing left behind
        assert sh(f"stat -c %i {d}/notes.txt").strip() != inode_before
        assert sh(f"ls -A {d}").split() == [".hidden", "notes.txt", "sub"]
        # what the editor's conflict check compares: the cluster's modification time
        assert saved["last_modified"] == agent_call("GET", url(f"{d}/notes.txt", content=0))[1]["last_modified"]


def test_a_save_into_a_read_only_folder_fails_clearly_and_keeps_the_old_file(jupyter_dirs):
    with cluster_dir() as d:
        sh(f"mkdir {d}/ro && printf 'keep me\\n' > {d}/ro/data.txt && chmod 555 {d}/ro")
        code, err = save_text(f"{d}/ro/data.txt", "lost?\n")
        assert code == 403, err
        assert err["error"]["message"] == f"Could not save {d}/ro/data.txt: permission denied on the cluster."
        assert sh(f"cat {d}/ro/data.txt") == "keep me\n"
        assert sh(f"ls -A {d}/ro").split() == ["data.txt"]  # no temporary left (no quota spent)
        # no checkpoint there either: a 403, which JupyterLab takes as "none" when it opens the file
        code, err = agent_call("POST", f"/api/v1/profiles/testbed/checkpoints/{d}/ro/data.txt")
        assert code == 403, err


def test_a_50_mib_upload_in_pieces_arrives_whole_and_downloads_the_same(jupyter_dirs):
    data = random.randbytes(50 * 2**20 + 12345)
    digest = hashlib.sha256(data).hexdigest()
    piece = 2**20  # what JupyterLab's file browser sends
    pieces = [data[i : i + piece] for i in range(0, len(data), piece)]
    with cluster_dir() as d:
        path = f"{d}/big data.bin"
        for n, p in enumerate(pieces, start=1):
            chunk = -1 if n == len(pieces) else n
            body = {"type": "file", "format": "base64", "content": base64.b64encode(p).decode(), "chunk": chunk}
            code, res = agent_call("PUT", url(path), body)
            assert code == 200, (n, res)
            if n == 1:
                # half-written: private, hidden, not yet where the user will find it
                [tmp] = sh(f"cd {d} && ls -A").splitlines()
                assert tmp.startswith(".~rc-") and tmp.endswith("-big data.bin"), tmp
                assert sh(f"cd {d} && stat -c %a .~rc-*") == "600\n"
                assert [e["name"] for e in agent_call("GET", url(d))[1]["content"]] == []
        assert res["size"] == len(data)
        assert sh(f"sha256sum '{path}'").split()[0] == digest
        assert sh(f"ls -A {d}").splitlines() == ["big data.bin"]

        # downloaded, streamed back: the same bytes
        from jupyterlab_remote_cluster.agent_process import get_agent

        got = bytearray()
        res = run_sync(get_agent().stream)(
            "/api/v1/profiles/testbed/download/" + quote(d) + "/big%20data.bin", lambda _line: None, got.extend
        )
        assert res.code == 200 and hashlib.sha256(got).hexdigest() == digest

        # a piece without the ones before it (an upload the agent did not see begin)
        body = {"type": "file", "format": "base64", "content": "AAAA", "chunk": 3}
        code, err = agent_call("PUT", url(f"{d}/other.bin"), body)
        assert code == 409 and "was interrupted" in err["error"]["message"], err
        assert sh(f"ls -A {d}").splitlines() == ["big data.bin"]


def test_a_symbolic_link_is_saved_through_and_stays_a_link(jupyter_dirs):
    with cluster_dir() as d:
        sh(f"cd {d} && printf 'v1\\n' > real.txt && ln -s real.txt link.txt")
        entries = {e["name"]: e["type"] for e in agent_call("GET", url(d))[1]["content"]}
        assert entries == {"real.txt": "file", "link.txt": "file"}
        assert save_text(f"{d}/link.txt", "v2\n")[0] == 200
        assert sh(f"cat {d}/real.txt") == "v2\n"
        assert sh(f"readlink {d}/link.txt").strip() == "real.txt"


def test_new_rename_copy_delete_and_checkpoints(jupyter_dirs):
    with cluster_dir() as d:
        names = [agent_call("POST", url(d), {"type": "file", "ext": ".py"})[1]["name"] for _ in range(2)]
        assert names == ["untitled.py", "untitled1.py"]
        code, nb = agent_call("POST", url(d), {"type": "notebook"})
        assert code == 201 and nb["type"] == "notebook"
        assert agent_call("GET", url(f"{d}/{nb['name']}"))[1]["content"]["nbformat"] == 4
        folder = agent_call("POST", url(d), {"type": "directory"})[1]
        assert folder["name"] == "Untitled Folder" and sh(f"test -d '{d}/Untitled Folder' && echo y") == "y\n"

        # a rename onto an existing file is refused and changes nothing
        code, err = agent_call("PATCH", url(f"{d}/untitled.py"), {"path": f"{d}/untitled1.py"})
        assert code == 409, err
        code, moved = agent_call("PATCH", url(f"{d}/untitled.py"), {"path": f"{d}/Untitled Folder/job.py"})
        assert code == 200 and moved["path"] == f"{d}/Untitled Folder/job.py", moved

        # a folder with something in it is not deleted; an empty one is
        code, err = agent_call("DELETE", url(f"{d}/Untitled Folder"))
        assert code == 409 and "not empty" in err["error"]["message"]
        assert agent_call("DELETE", url(f"{d}/Untitled Folder/job.py"))[0] == 204
        assert agent_call("DELETE", url(f"{d}/Untitled Folder"))[0] == 204

        save_text(f"{d}/run.sh", "echo 1\n")
        sh(f"chmod 750 {d}/run.sh")
        code, copy = agent_call("POST", url(d), {"copy_from": f"{d}/run.sh"})
        assert code == 201 and copy["name"] == "run-Copy1.sh"
        assert sh(f"cat {d}/run-Copy1.sh; stat -c %a {d}/run-Copy1.sh") == "echo 1\n750\n"

        # checkpoints as Jupyter keeps them, restored over the file
        cp = f"/api/v1/profiles/testbed/checkpoints/{d}/run.sh"
        code, made = agent_call("POST", cp)
        assert code == 201 and made["id"] == "checkpoint"
        assert agent_call("GET", cp)[1] == [made]
        save_text(f"{d}/run.sh", "echo 2\n")
        assert agent_call("POST", cp + "?restore=checkpoint")[0] == 204
        assert sh(f"cat {d}/run.sh; cat {d}/.ipynb_checkpoints/run-checkpoint.sh") == "echo 1\necho 1\n"
        assert agent_call("DELETE", cp + "?id=checkpoint")[0] == 204
        assert agent_call("GET", cp)[1] == []


def test_paths_out_of_the_drive_and_bad_bodies_are_refused(jupyter_dirs):
    for bad in ["..", "a/../..", "a/./b"]:
        code, err = agent_call("GET", FILES + "/" + bad)
        assert code == 400 and err["error"]["code"] == "bad-path", (bad, err)
    code, err = agent_call("PUT", url("x.txt"), {"type": "file", "format": "text"})
    assert code == 400 and "no content" in err["error"]["message"]
    code, err = agent_call("GET", url("no-such-file-here.txt"))
    assert code == 404 and err["error"]["message"].endswith("no such file or folder on the cluster."), err
    assert sh("ls x.txt 2>/dev/null || echo none") == "none\n"
