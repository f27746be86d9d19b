"""Session-like TLS material for tests and benchmarks (bench/ imports it too)."""

import subprocess
from pathlib import Path


def make_tls(directory, name="jrc-t"):
    """A CA and one certificate it signs (as the agent makes them, here with openssl):
    {"ca", "cert", "key"} PEM texts and their files."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def ossl(*args, stdin=None):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d, input=stdin)

    ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key")
    ossl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=%s CA" % name,
        "-days",
        "2",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "key.pem")
    ossl("req", "-new", "-key", "key.pem", "-subj", "/CN=%s" % name, "-out", "leaf.csr")
    (d / "ext").write_text(
        "subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" % name
    )
    ossl(
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "cert.pem",
        "-extfile",
        "ext",
    )
    return {k: (d / (k + ".pem")).read_text() for k in ("ca", "cert", "key")}
