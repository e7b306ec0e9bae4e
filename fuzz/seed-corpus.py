#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/corpus/<target>/) from ../shared/vectors.

Run from anywhere: `python3 fuzz/seed-corpus.py`. Existing seeds with the same names are
overwritten; seeds found by fuzzing are not touched. The corpus is committed, so this only
needs to run again when the vectors change.
"""
import hashlib
import json
import pathlib
import shutil

FUZZ = pathlib.Path(__file__).resolve().parent
VECTORS = FUZZ.parent.parent / "shared" / "vectors"
CORPUS = FUZZ / "corpus"


SEEN = set()


def write(target, name, data):
    """Writes one seed unless the same bytes were already written for `target`."""
    if (target, data) in SEEN:
        return
    SEEN.add((target, data))
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)


def slug(text):
    return "".join(c if c.isalnum() else "_" for c in text)


def main():
    privatev1 = json.loads((VECTORS / "privatev1.json").read_text())
    ratchet = json.loads((VECTORS / "ratchet.json").read_text())
    manifest = json.loads((VECTORS / "legacy" / "manifest.json").read_text())

    # envelope: every recorded envelope (both directions), the negative cases, and the legacy
    # databases' pending envelopes (addressed to another identity: unknown hints there).
    for event in privatev1["events"]:
        if event.get("envelope"):
            name = f"privatev1_{event['index']:02}_{event['op']}_{event['label']}"
            write("envelope", slug(name), bytes.fromhex(event["envelope"]))
    for case in privatev1["negative_cases"]:
        write("envelope", slug(f"negative_{case['name']}"), bytes.fromhex(case["envelope"]))
    for variant in manifest["variants"]:
        for pending in variant["pending_envelopes"]:
            name = f"legacy_{variant['variant']}_{pending['label']}"
            write("envelope", slug(name), bytes.fromhex(pending["envelope"]))

    # intro_bundle: the recorded bundle and the legacy databases' bundles.
    bundle = bytes.fromhex(privatev1["intro_bundle"]["bytes_hex"])
    assert bundle.decode("ascii") == privatev1["intro_bundle"]["string"]
    write("intro_bundle", "privatev1", bundle)
    for variant in manifest["variants"]:
        for db in variant["dbs"]:
            for key in ("pending_handshake_intro_bundle", "unused_intro_bundle_in_db"):
                if db.get(key):
                    name = f"legacy_{variant['variant']}_{db['file']}_{key}"
                    write("intro_bundle", slug(name), db[key].encode("ascii"))

    # ratchet_state: every distinct recorded state encoding.
    states = set()

    def collect(value):
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "as_bytes" and isinstance(inner, str):
                    states.add(inner)
                else:
                    collect(inner)
        elif isinstance(value, list):
            for inner in value:
                collect(inner)

    collect(ratchet)
    collect(privatev1)
    for state in sorted(states):
        data = bytes.fromhex(state)
        write("ratchet_state", "state_" + hashlib.sha1(data).hexdigest()[:16], data)

    # legacy_import: the plain reference database (the encrypted one needs a key).
    directory = CORPUS / "legacy_import"
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(VECTORS / "legacy" / "raya_plain.db", directory / "raya_plain.db")


if __name__ == "__main__":
    main()
