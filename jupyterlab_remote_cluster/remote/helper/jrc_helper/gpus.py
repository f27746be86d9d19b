"""The job's GPUs as nvidia-smi (NVIDIA) or rocm-smi (AMD) reports them, sampled once per
heartbeat for the efficiency card (usage.py) and idle reclaim (idle.py). Only the GPUs the
batch system gave the job count: CUDA_VISIBLE_DEVICES (indices or UUIDs) for NVIDIA,
ROCR_VISIBLE_DEVICES or HIP_VISIBLE_DEVICES (indices) for AMD, where set. None where
neither tool answers (no GPU on the node, or no driver)."""

import json
import os
import subprocess

QUERY = (
    "nvidia-smi",
    "--query-gpu=index,uuid,utilization.gpu,memory.used,memory.total",
    "--format=csv,noheader,nounits",
)
ROCM_QUERY = ("rocm-smi", "--showuse", "--showmeminfo", "vram", "--json")
MIB = 1024 * 1024


def parse(text, visible=None):
    """nvidia-smi's CSV lines -> [{"index", "uuid", "percent", "memUsedBytes", "memTotalBytes"}],
    keeping the GPUs named in `visible` (CUDA_VISIBLE_DEVICES' value; None: all). A value
    nvidia-smi cannot read ("[N/A]", "[Not Supported]") leaves that GPU's field out."""
    keep = None
    if visible is not None:
        keep = {v.strip() for v in visible.split(",") if v.strip()}
    gpus = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 5:
            continue
        index, uuid = cells[0], cells[1]
        if keep is not None and index not in keep and uuid not in keep:
            continue
        gpu = {"index": index, "uuid": uuid}
        for key, cell, scale in (
            ("percent", cells[2], 1),
            ("memUsedBytes", cells[3], MIB),
            ("memTotalBytes", cells[4], MIB),
        ):
            try:
                gpu[key] = float(cell) * scale
            except ValueError:
                pass
        gpus.append(gpu)
    return gpus


def parse_rocm(text, visible=None):
    """rocm-smi's JSON ({"card0": {"GPU use (%)": "35", "VRAM Total Memory (B)": ...,
    "VRAM Total Used Memory (B)": ...}}, maybe after warning lines) -> the same dicts as
    parse(), keeping the cards whose index is in `visible` (ROCR_VISIBLE_DEVICES' value;
    None: all). None when it is not that JSON."""
    start = text.find("{")
    try:
        cards = json.loads(text[start:]) if start >= 0 else None
    except ValueError:
        return None
    if not isinstance(cards, dict):
        return None
    keep = None
    if visible is not None:
        keep = {v.strip() for v in visible.split(",") if v.strip()}
    gpus = []
    for name, fields in sorted(cards.items(), key=lambda kv: _card_index(kv[0])):
        index = _card_index(name)
        if index is None or not isinstance(fields, dict) or (keep is not None and str(index) not in keep):
            continue
        gpu = {"index": str(index), "uuid": str(fields.get("Unique ID", ""))}
        for key, field in (
            ("percent", "GPU use (%)"),
            ("memUsedBytes", "VRAM Total Used Memory (B)"),
            ("memTotalBytes", "VRAM Total Memory (B)"),
        ):
            try:
                gpu[key] = float(fields[field])
            except (KeyError, TypeError, ValueError):
                pass  # "N/A": that field is left out
        gpus.append(gpu)
    return gpus


def _card_index(name):
    return int(name[4:]) if name.startswith("card") and name[4:].isdigit() else None


def _run(argv):
    try:
        return subprocess.run(argv, capture_output=True, timeout=10, check=True).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.SubprocessError):
        return None


def sample(env=None):
    """The job's GPUs now, or None where neither nvidia-smi nor rocm-smi answers."""
    env = os.environ if env is None else env
    out = _run(QUERY)
    if out is not None:
        return parse(out, env.get("CUDA_VISIBLE_DEVICES"))
    out = _run(ROCM_QUERY)
    if out is None:
        return None
    return parse_rocm(out, env.get("ROCR_VISIBLE_DEVICES", env.get("HIP_VISIBLE_DEVICES")))


def busiest_percent(gpus):
    """The busiest GPU's utilization, or None (no GPUs, or none reports it)."""
    values = [g["percent"] for g in gpus or [] if "percent" in g]
    return max(values) if values else None
