"""Build the schema-coverage corpus (bench/corpus/, gitignored) from public repositories.

The corpus is a list of sources by repository, commit and path
(``bench/schema_corpus_manifest.json``, committed); the schemas themselves are not
committed (their licences are their authors'). This script reads each from a local git
snapshot of its repository, so it runs without network access:

    python scripts/fetch_schema_corpus.py --repo SchemaStore/schemastore=/path/to/git-dir
        # writes bench/corpus/SchemaStore__schemastore/<path>

``--git-dir`` may be a bare repository or a clone's ``.git``; the commit named in the
manifest must be in it (``git clone https://github.com/SchemaStore/schemastore`` then
``git checkout`` is not needed: the script reads blobs with ``git show COMMIT:PATH``).

The manifest's ``store`` entries name whole folders (repository, commit, folder): every file
in them is written too, so the schemas a corpus schema refers to (``base.json#/...``,
``https://json.schemastore.org/jsconfig.json``) are there for the schema store the benchmark
serves with (``schema_store``). A blob the local snapshot lacks (a shallow snapshot may leave its
largest files out) is skipped and listed.

``--select`` rebuilds the manifest from the snapshots instead: every ``*.json`` under
``src/schemas/json`` of SchemaStore at its HEAD, at most ``--max-bytes`` long, taken
with a fixed stride so the corpus spreads over the whole catalogue.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "bench" / "schema_corpus_manifest.json"
CORPUS = ROOT / "bench" / "corpus"

#: What --select takes from each repository: (folder, stride).
SELECTION = {"SchemaStore/schemastore": ("src/schemas/json", 3)}


def _git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True).stdout


def select(repos: dict[str, str], max_bytes: int, limit: int) -> list[dict[str, str]]:
    entries = []
    for repo, git_dir in repos.items():
        if repo not in SELECTION:
            continue
        folder, stride = SELECTION[repo]
        commit = _git(git_dir, "rev-parse", "HEAD").decode().strip()
        listing = _git(git_dir, "ls-tree", "-r", "-l", commit, folder).decode().splitlines()
        files = []
        for line in listing:
            meta, path = line.split("\t", 1)
            size = meta.split()[3]
            if path.endswith(".json") and size.isdigit() and int(size) <= max_bytes:
                files.append(path)
        for path in sorted(files)[::stride][:limit]:
            entries.append({"repo": repo, "commit": commit, "path": path})
    return entries


def build(repos: dict[str, str], entries: list[dict[str, str]]) -> int:
    written = 0
    for entry in entries:
        git_dir = repos.get(entry["repo"])
        if git_dir is None:
            print(f"skipped (no --repo for {entry['repo']}): {entry['path']}", file=sys.stderr)
            continue
        blob = _git(git_dir, "show", f"{entry['commit']}:{entry['path']}")
        target = CORPUS / entry["repo"].replace("/", "__") / entry["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        written += 1
    return written


def build_store(repos: dict[str, str], stores: list[dict[str, str]]) -> tuple[int, list[str]]:
    """Write every file of each store folder at its commit; (files written, paths skipped)."""
    written, skipped = 0, []
    for entry in stores:
        git_dir = repos.get(entry["repo"])
        if git_dir is None:
            skipped.append(f"{entry['repo']}:{entry['path']} (no --repo)")
            continue
        listing = _git(git_dir, "ls-tree", "-r", entry["commit"], entry["path"]).decode().splitlines()
        for line in listing:
            meta, path = line.split("\t", 1)
            blob = meta.split()[2]
            present = subprocess.run(["git", "--git-dir", git_dir, "cat-file", "-e", blob], capture_output=True)
            if present.returncode != 0:
                skipped.append(f"{entry['repo']}:{path} (not in the snapshot)")
                continue
            target = CORPUS / entry["repo"].replace("/", "__") / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git(git_dir, "cat-file", "blob", blob))
            written += 1
    return written, skipped


def store_dirs(manifest: dict) -> list[pathlib.Path]:
    """The local folders of the manifest's ``store`` entries (what ``schema_store`` is set to)."""
    return [CORPUS / e["repo"].replace("/", "__") / e["path"] for e in manifest.get("store", [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", action="append", default=[], metavar="OWNER/NAME=GIT_DIR", help="a local snapshot")
    parser.add_argument("--select", action="store_true", help="rebuild the manifest from the snapshots first")
    parser.add_argument("--max-bytes", type=int, default=16_000)
    parser.add_argument("--limit", type=int, default=200)
    args = parser.parse_args(argv)
    repos = dict(item.split("=", 1) for item in args.repo)
    if args.select:
        entries = select(repos, args.max_bytes, args.limit)
        stores = [{"repo": e["repo"], "commit": e["commit"], "path": SELECTION[e["repo"]][0]} for e in entries[:1]]
        MANIFEST.write_text(json.dumps({"sources": entries, "store": stores}, indent=1) + "\n")
        print(f"{MANIFEST.relative_to(ROOT)}: {len(entries)} schemas", file=sys.stderr)
    manifest = json.loads(MANIFEST.read_text())
    stored, skipped = build_store(repos, manifest.get("store", []))
    for line in skipped:
        print(f"store: skipped {line}", file=sys.stderr)
    if manifest.get("store"):
        print(
            f"schema store: {stored} files in {', '.join(str(d.relative_to(ROOT)) for d in store_dirs(manifest))}",
            file=sys.stderr,
        )
    entries = manifest["sources"]
    written = build(repos, entries)
    print(f"{CORPUS.relative_to(ROOT)}: {written} of {len(entries)} schemas written", file=sys.stderr)
    return 0 if written == len(entries) else 1


if __name__ == "__main__":
    sys.exit(main())
