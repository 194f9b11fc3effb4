#!/usr/bin/env python3
"""Shows that each safety guard's test fails without the guard.

For every row of MUTATIONS: copy the working tree to a scratch directory
(once), apply the mutation (one exact text replacement that disables the
guard), run the guard's test, expect it to FAIL, and put the file back. A
mutation whose test still passes means the test does not test the guard:
the script then exits 1.

Usage: python3 tests/mutations/mutate.py [NAME ...]   (make mutants)
       python3 tests/mutations/mutate.py --check      (make lint: the texts still match)
The scratch copy shares one cargo target directory between runs, so only
the first build is cold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = Path(os.environ.get("CWL_MUTANTS_DIR", "/tmp/cwl-archiver-mutants"))
TARGET = ROOT / "target" / "mutants"
SAFETY = ("-p", "archiver", "--test", "workflow_safety")


@dataclass
class Mutation:
    name: str
    guard: str
    file: str
    old: str
    new: str
    test: str


MUTATIONS = [
    Mutation(
        "no-lease",
        "one run per group: the lease taken at the start",
        "crates/archiver/src/workflow/start.rs",
        "    if settings.mode != Mode::Plan\n        && let Acquired::Busy(holder)",
        "    if false\n        && let Acquired::Busy(holder)",
        "a_second_run_of_a_busy_group_ends_busy_and_touches_nothing",
    ),
    Mutation(
        "no-per-event-proof",
        "events too recent for their export are found and archived before the delete",
        "crates/archiver/src/workflow/confirm.rs",
        "                want_late(proof, group, &mut wanted);",
        "                let _ = group;",
        "events_too_recent_for_the_export_are_supplemented_before_the_delete",
    ),
    Mutation(
        "no-fresh-read-before-an-expired-delete",
        "the read right before an expired stream's delete finds a writer's new events",
        "crates/archiver/src/workflow/confirm.rs",
        "found.new_kept = u64::from(proven.reached_cutoff);",
        "found.new_kept = 0;",
        "a_writer_back_on_an_expired_stream_keeps_its_stream",
    ),
    Mutation(
        "no-fresh-read-for-a-stale-delete-candidate",
        "the same read decides a stream whose lagging metadata makes it a delete candidate (the scan does not read it)",
        "crates/archiver/src/workflow/confirm.rs",
        "found.new_kept = u64::from(proven.reached_cutoff);",
        "found.new_kept = 0;",
        "stale_stream_metadata_never_decides_a_delete",
    ),
    Mutation(
        "no-kept-comparison-before-a-rebuild-delete",
        "the read right before a mixed stream's delete stages kept events written behind the scan",
        "crates/archiver/src/workflow/confirm.rs",
        "found.comparison = compare(&mut expected, &mut cursor, Some(staging.writer)).await?;\n        found.new_kept = found.comparison.foreign;",
        "let _ = (&mut expected, staging.writer);",
        "an_old_event_written_after_the_listing_is_archived_before_its_stream_goes",
    ),
    Mutation(
        "no-marker",
        "the rebuilding marker written before the first delete",
        "crates/archiver/src/workflow/rebuild.rs",
        "                self.write_marker(stream, &marker).await?;\n                if let Confirmed::Deleted(n)",
        "                if let Confirmed::Deleted(n)",
        "a_rerun_with_a_later_cutoff_finishes_a_failed_rebuild_and_archives_its_events",
    ),
    Mutation(
        "no-earlier-markers-in-the-manifest",
        "a later run finishes an earlier run's interrupted rebuild",
        "crates/archiver/src/workflow/check.rs",
        "            && key.run_id != *run_id",
        "            && false",
        "a_rerun_with_a_later_cutoff_finishes_a_failed_rebuild_and_archives_its_events",
    ),
    Mutation(
        "no-delete-intent",
        "a retried delete tells the stream it deleted from one its writer recreated",
        "crates/archiver/src/workflow/rebuild.rs",
        "match progress.deleting.as_ref().filter(|i| i.stream == stream) {",
        "match None::<&DeleteIntent> {",
        "a_retried_delete_leaves_a_stream_its_writer_recreated",
    ),
    Mutation(
        "no-staging-before-a-replay-restart",
        "a replay restart stages what a writer added before it deletes again",
        "crates/archiver/src/workflow/rebuild.rs",
        "                    match self.delete_confirmed(&target, &mut marker, clock).await? {\n                        Confirmed::Deleted(n) => supplemented += n,",
        "                    self.clients.logs.delete_stream(self.group(), stream).await?;\n                    match Confirmed::Deleted(0) {\n                        Confirmed::Deleted(n) => supplemented += n,",
        "a_replay_restart_stages_what_a_writer_added_before_deleting_again",
    ),
    Mutation(
        "no-empty-export-check",
        "an export with no object for events it must hold stops the run",
        "crates/archiver/src/workflow/check.rs",
        "    if export.objects > 0 {\n        return Ok(());\n    }",
        "    return Ok(());",
        "an_export_without_objects_for_events_it_must_hold_stops_the_run",
    ),
    Mutation(
        "no-data-protection-skip",
        "a data-protected group is not pruned unless allowMaskedArchive",
        "crates/archiver/src/workflow/scan.rs",
        "if self.protection.masks() && !settings.allow_masked_archive && settings.mode.is_destructive() {",
        "if false {",
        "a_data_protected_group_is_never_replayed_masked",
    ),
    Mutation(
        "no-unmask",
        "kept events of a data-protected group are staged unmasked",
        "crates/archiver/src/workflow/scan.rs",
        ".unmasked(self.protection.masks());",
        ".unmasked(false);",
        "a_data_protected_group_is_never_replayed_masked",
    ),
    Mutation(
        "no-unreplayable-recheck",
        "a writer's event older than the replay floor, staged by the confirmation, must be archived first",
        "crates/archiver/src/workflow/rebuild.rs",
        "                if replay_from > marker.cutoff_ms {\n                    // A writer's event older than the replay floor.\n",
        "                if false {\n",
        "a_writer_event_too_old_to_replay_and_not_exported_stops_the_delete",
    ),
]


def copy_tree() -> None:
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    ignore = shutil.ignore_patterns("target", ".git", ".venv*", "node_modules", ".stack", "__pycache__")
    # Fresh modification times (shutil.copy, not copy2): the scratch target
    # may hold a build of the previous run's last mutant, newer than the
    # original sources, which cargo would otherwise take as up to date.
    shutil.copytree(ROOT, SCRATCH, ignore=ignore, copy_function=shutil.copy)


def run_test(test: str) -> tuple[bool, float]:
    env = dict(os.environ, CARGO_TARGET_DIR=str(TARGET))
    started = time.monotonic()
    done = subprocess.run(
        ["cargo", "test", "--quiet", *SAFETY, "--", "--exact", test],
        cwd=SCRATCH,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return done.returncode == 0, time.monotonic() - started


def check_texts() -> int:
    """Every mutation's text is in its file exactly once (run by `make lint`,
    so a refactor that moves a guard updates its mutation in the same change)."""
    stale = [m for m in MUTATIONS if (ROOT / m.file).read_text().count(m.old) != 1]
    for m in stale:
        print(f"{m.name}: the text to mutate is not in {m.file} exactly once; update MUTATIONS", file=sys.stderr)
    return 1 if stale else 0


def main(names: list[str]) -> int:
    if names == ["--check"]:
        return check_texts()
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    unknown = set(names) - {m.name for m in MUTATIONS}
    if unknown:
        print(f"unknown mutation(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    copy_tree()
    survived = []
    print(f"{'mutation':45} {'test':80} result")
    for m in chosen:
        path = SCRATCH / m.file
        text = path.read_text()
        if text.count(m.old) != 1:
            print(f"{m.name}: the text to mutate is not in {m.file} exactly once; update MUTATIONS", file=sys.stderr)
            return 2
        passed_clean, _ = run_test(m.test)
        if not passed_clean:
            print(f"{m.name}: {m.test} fails even without the mutation", file=sys.stderr)
            return 2
        path.write_text(text.replace(m.old, m.new))
        try:
            passed, seconds = run_test(m.test)
        finally:
            path.write_text(text)
        verdict = "SURVIVED (the test passes without the guard)" if passed else f"killed: the test fails ({seconds:.0f} s)"
        print(f"{m.name:45} {m.test:80} {verdict}", flush=True)
        if passed:
            survived.append(m.name)
    if survived:
        print(f"mutations the tests did not notice: {', '.join(survived)}", file=sys.stderr)
        return 1
    print(f"all {len(chosen)} mutations were caught")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
