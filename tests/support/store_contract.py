"""The behaviour every `Store` adapter must have, as tests any adapter's test module can reuse.

Usage: in the adapter's test module, provide an async fixture named `store` that yields an
opened store (schema applied), then subclass:

    class TestPostgresStore(StoreContract):
        pass

Every test makes its own tenants (random ids), so one database may serve all tests without
cleaning up between them; counts that span tenants (`count_jobs`) are compared as differences.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ragplatform.backends.store.base import Store
from ragplatform.domain.errors import AlreadyExists, InvalidArgument, NotFound
from ragplatform.domain.models import Citation, Job, JobClaim, JobState, NewUpload, Role, Turn


def new_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:12]}"


def upload(tenant_id: str, filename: str = "guide.md", content: str = "v1", **metadata: str) -> NewUpload:
    """A `NewUpload` whose hash is derived from `content`, so equal content means equal hash."""
    content_hash = f"sha256-{content}"
    return NewUpload(
        tenant_id=tenant_id,
        filename=filename,
        content_type="text/markdown",
        content_hash=content_hash,
        size_bytes=len(content),
        blob_key=f"tenants/{tenant_id}/blobs/{content_hash}",
        metadata=dict(metadata),
    )


async def claim_one(store: Store, job_id: str, attempts_below: int | None = None) -> JobClaim:
    """One job's claim through `claim_jobs` (which must find the job)."""
    [found] = await store.claim_jobs([(job_id, attempts_below)])
    assert found is not None
    return found


async def succeed_latest(store: Store, job_id: str, chunk_count: int) -> Job | None:
    [job] = await store.succeed_latest_jobs([(job_id, chunk_count)])
    return job


class StoreContract:
    """Tests run against the `store` fixture of the module that subclasses this."""

    # --- lost-message sweeps --------------------------------------------------------------------
    async def test_stale_unfinished_jobs_are_the_queued_and_running_ones_idle_since_the_time_given(
        self, store: Store
    ) -> None:
        tenant = new_tenant()
        queued = (await store.record_upload(upload(tenant, "a.md", "a"))).job
        running = await store.start_job((await store.record_upload(upload(tenant, "b.md", "b"))).job.job_id)
        done = (await store.record_upload(upload(tenant, "c.md", "c"))).job
        await store.start_job(done.job_id)
        finished = await store.succeed_job(done.job_id, 1)
        later = finished.updated_at + timedelta(seconds=1)
        stale = [j.job_id for j in await store.stale_unfinished_jobs(later, 1000) if j.tenant_id == tenant]
        assert stale == [queued.job_id, running.job_id]  # oldest update first; the finished one never
        assert not [j for j in await store.stale_unfinished_jobs(queued.updated_at, 1000) if j.tenant_id == tenant]

    async def test_only_one_touch_of_a_stale_job_wins(self, store: Store) -> None:
        job = (await store.record_upload(upload(new_tenant(), "a.md", "a"))).job
        wins = await asyncio.gather(*(store.touch_stale_job(job.job_id, job.updated_at) for _ in range(5)))
        assert sorted(wins) == [False, False, False, False, True]
        touched = await store.get_job_any_tenant(job.job_id)
        assert touched.updated_at > job.updated_at
        assert touched.state == JobState.QUEUED
        running = await store.start_job(job.job_id)
        assert not await store.touch_stale_job(job.job_id, touched.updated_at)  # changed since seen
        assert await store.touch_stale_job(job.job_id, running.updated_at)  # RUNNING and as seen
        done = await store.succeed_job(job.job_id, 1)
        assert not await store.touch_stale_job(job.job_id, done.updated_at)  # finished

    # --- health ------------------------------------------------------------------------------
    async def test_ping_answers_when_open(self, store: Store) -> None:
        await store.ping()

    # --- uploads and deduplication -----------------------------------------------------------
    async def test_first_upload_records_a_document_and_a_queued_job(self, store: Store) -> None:
        tenant = new_tenant()
        outcome = await store.record_upload(upload(tenant, "guide.md", "v1", team="docs"))

        assert not outcome.deduplicated
        document, job = outcome.document, outcome.job
        assert document.tenant_id == tenant
        assert document.filename == "guide.md"
        assert document.content_hash == "sha256-v1"
        assert document.metadata == {"team": "docs"}
        assert document.chunk_count == 0
        assert document.latest_job_id == job.job_id
        assert document.created_at.tzinfo is not None
        assert job.state == JobState.QUEUED
        assert job.document_id == document.document_id
        assert job.tenant_id == tenant
        assert job.filename == "guide.md"
        assert job.attempts == 0
        # The worker relies on this to know a job is its document's first (nothing to trim).
        assert job.created_at == document.created_at
        assert await store.get_document(tenant, document.document_id) == document
        assert await store.get_job(tenant, job.job_id) == job

    async def test_identical_content_is_deduplicated(self, store: Store) -> None:
        tenant = new_tenant()
        first = await store.record_upload(upload(tenant, "guide.md", "v1"))
        again = await store.record_upload(upload(tenant, "guide.md", "v1"))

        assert again.deduplicated
        assert again.document.document_id == first.document.document_id
        assert again.job.job_id == first.job.job_id
        page = await store.list_jobs(tenant, None, 10)
        assert [j.job_id for j in page.items] == [first.job.job_id]

    async def test_identical_content_under_another_name_is_deduplicated(self, store: Store) -> None:
        tenant = new_tenant()
        first = await store.record_upload(upload(tenant, "guide.md", "v1"))
        copy = await store.record_upload(upload(tenant, "copy-of-guide.md", "v1"))

        assert copy.deduplicated
        assert copy.document.document_id == first.document.document_id
        assert len((await store.list_documents(tenant, 10)).items) == 1

    async def test_deduplication_is_per_tenant(self, store: Store) -> None:
        a, b = new_tenant(), new_tenant()
        in_a = await store.record_upload(upload(a, "guide.md", "v1"))
        in_b = await store.record_upload(upload(b, "guide.md", "v1"))

        assert not in_b.deduplicated
        assert in_b.document.document_id != in_a.document.document_id
        assert in_b.document.tenant_id == b

    async def test_changed_content_keeps_the_document_and_queues_a_new_job(self, store: Store) -> None:
        tenant = new_tenant()
        first = await store.record_upload(upload(tenant, "guide.md", "v1", edition="1"))
        await store.start_job(first.job.job_id)
        await store.succeed_job(first.job.job_id, chunk_count=4)

        changed = await store.record_upload(upload(tenant, "guide.md", "v2-longer", edition="2"))

        assert not changed.deduplicated
        assert changed.document.document_id == first.document.document_id
        assert changed.job.job_id != first.job.job_id
        assert changed.job.state == JobState.QUEUED
        document = await store.get_document(tenant, first.document.document_id)
        assert document.content_hash == "sha256-v2-longer"
        assert document.size_bytes == len("v2-longer")
        assert document.blob_key.endswith("sha256-v2-longer")
        assert document.metadata == {"edition": "2"}
        assert document.latest_job_id == changed.job.job_id
        assert document.created_at == first.document.created_at
        assert changed.job.created_at != document.created_at  # not the document's first job
        assert document.updated_at >= first.document.updated_at
        # The old job stays in the history.
        old = await store.get_job(tenant, first.job.job_id)
        assert old.state == JobState.SUCCEEDED
        assert len((await store.list_documents(tenant, 10)).items) == 1
        assert len((await store.list_jobs(tenant, None, 10)).items) == 2

    async def test_reupload_after_a_failed_job_queues_a_new_job(self, store: Store) -> None:
        tenant = new_tenant()
        first = await store.record_upload(upload(tenant, "scan.pdf", "corrupt"))
        await store.fail_job(first.job.job_id, "the PDF is corrupt; export it again")

        retry = await store.record_upload(upload(tenant, "scan.pdf", "corrupt"))

        assert not retry.deduplicated
        assert retry.document.document_id == first.document.document_id
        assert retry.job.job_id != first.job.job_id
        assert retry.job.state == JobState.QUEUED
        assert retry.document.latest_job_id == retry.job.job_id

    async def test_upload_while_the_job_runs_is_deduplicated_to_that_job(self, store: Store) -> None:
        tenant = new_tenant()
        first = await store.record_upload(upload(tenant, "guide.md", "v1"))
        await store.start_job(first.job.job_id)

        again = await store.record_upload(upload(tenant, "guide.md", "v1"))

        assert again.deduplicated
        assert again.job.job_id == first.job.job_id
        assert again.job.state == JobState.RUNNING

    # --- job transitions -----------------------------------------------------------------------
    async def test_job_runs_reports_progress_and_succeeds(self, store: Store) -> None:
        tenant = new_tenant()
        outcome = await store.record_upload(upload(tenant))
        job_id = outcome.job.job_id

        running = await store.start_job(job_id)
        assert running.state == JobState.RUNNING
        assert running.attempts == 1

        await store.set_job_progress(job_id, chunks_total=10, chunks_done=4)
        progress = await store.get_job(tenant, job_id)
        assert (progress.chunks_total, progress.chunks_done) == (10, 4)

        done = await store.succeed_job(job_id, chunk_count=10)
        assert done.state == JobState.SUCCEEDED
        assert done.error == ""
        assert (await store.get_document(tenant, outcome.document.document_id)).chunk_count == 10
        assert (await store.get_job_any_tenant(job_id)).state == JobState.SUCCEEDED

    async def test_succeed_latest_job_leaves_a_superseded_job_alone(self, store: Store) -> None:
        tenant = new_tenant()
        old = await store.record_upload(upload(tenant, "guide.md", "v1"))
        await store.start_job(old.job.job_id)
        new = await store.record_upload(upload(tenant, "guide.md", "v2"))  # uploaded again meanwhile

        assert await succeed_latest(store, old.job.job_id, 4) is None
        assert (await store.get_job(tenant, old.job.job_id)).state == JobState.RUNNING
        await store.start_job(new.job.job_id)
        done = await succeed_latest(store, new.job.job_id, 6)
        assert done is not None
        assert (done.state, done.chunks_done) == (JobState.SUCCEEDED, 6)
        assert (await store.get_document(tenant, new.document.document_id)).chunk_count == 6

    async def test_successes_of_several_jobs_come_in_order_and_bump_each_tenant_version(self, store: Store) -> None:
        tenant, other = new_tenant(), new_tenant()
        first = await store.record_upload(upload(tenant, "a.md", "a"))
        second = await store.record_upload(upload(tenant, "b.md", "b"))
        old = await store.record_upload(upload(tenant, "c.md", "v1"))
        await store.record_upload(upload(tenant, "c.md", "v2"))  # old is superseded
        elsewhere = await store.record_upload(upload(other, "a.md", "a"))
        for outcome in (first, second, old, elsewhere):
            await store.start_job(outcome.job.job_id)
        before = await store.corpus_version(tenant), await store.corpus_version(other)

        results = await store.succeed_latest_jobs(
            [
                (first.job.job_id, 3),
                (old.job.job_id, 4),
                (str(uuid.uuid4()), 1),
                (elsewhere.job.job_id, 5),
                (second.job.job_id, 6),
            ]
        )

        assert [(j.job_id, j.state, j.chunks_done) if j else None for j in results] == [
            (first.job.job_id, JobState.SUCCEEDED, 3),
            None,
            None,
            (elsewhere.job.job_id, JobState.SUCCEEDED, 5),
            (second.job.job_id, JobState.SUCCEEDED, 6),
        ]
        assert (await store.get_document(tenant, second.document.document_id)).chunk_count == 6
        assert (await store.get_document(other, elsewhere.document.document_id)).chunk_count == 5
        assert (await store.get_job(tenant, old.job.job_id)).state == JobState.RUNNING
        assert await store.corpus_version(tenant) > before[0]
        assert await store.corpus_version(other) > before[1]
        assert await store.succeed_latest_jobs([]) == []

    async def test_each_start_counts_an_attempt(self, store: Store) -> None:
        outcome = await store.record_upload(upload(new_tenant()))
        await store.start_job(outcome.job.job_id)
        requeued = await store.requeue_job(outcome.job.job_id, "embedding endpoint timed out; retrying")
        assert requeued.state == JobState.QUEUED
        assert requeued.error == "embedding endpoint timed out; retrying"
        assert requeued.attempts == 1

        again = await store.start_job(outcome.job.job_id)
        assert again.state == JobState.RUNNING
        assert again.attempts == 2

    async def test_a_claim_reads_the_job_and_its_document_and_starts_an_attempt(self, store: Store) -> None:
        tenant = new_tenant()
        outcome = await store.record_upload(upload(tenant, "guide.md", "v1", team="docs"))

        claim = await claim_one(store, outcome.job.job_id)

        assert (claim.job.state, claim.job.attempts) == (JobState.QUEUED, 0)  # as it was before
        assert claim.job.filename == "guide.md"
        assert claim.document == await store.get_document(tenant, outcome.document.document_id)
        assert claim.document.metadata == {"team": "docs"}
        assert claim.started is not None
        assert (claim.started.state, claim.started.attempts) == (JobState.RUNNING, 1)
        assert claim.started.created_at == outcome.job.created_at
        assert await store.get_job(tenant, outcome.job.job_id) == claim.started

        again = await claim_one(store, outcome.job.job_id)  # redelivered while RUNNING: another attempt
        assert again.job == claim.started
        assert again.started is not None
        assert again.started.attempts == 2

    async def test_a_claim_starts_nothing_for_a_finished_or_superseded_job(self, store: Store) -> None:
        tenant = new_tenant()
        done = await store.record_upload(upload(tenant, "done.md", "done"))
        await store.start_job(done.job.job_id)
        await store.succeed_job(done.job.job_id, 3)
        old = await store.record_upload(upload(tenant, "guide.md", "v1"))
        await store.start_job(old.job.job_id)
        new = await store.record_upload(upload(tenant, "guide.md", "v2"))  # uploaded again meanwhile

        finished = await claim_one(store, done.job.job_id)
        superseded = await claim_one(store, old.job.job_id)

        assert (finished.job.state, finished.started) == (JobState.SUCCEEDED, None)
        assert superseded.started is None
        assert superseded.document.latest_job_id == new.job.job_id
        assert (await store.get_job(tenant, old.job.job_id)).attempts == 1

    async def test_a_claim_starts_no_attempt_past_the_bound(self, store: Store) -> None:
        tenant = new_tenant()
        outcome = await store.record_upload(upload(tenant))
        await store.start_job(outcome.job.job_id)
        await store.start_job(outcome.job.job_id)

        refused = await claim_one(store, outcome.job.job_id, attempts_below=2)
        assert (refused.job.attempts, refused.started) == (2, None)
        assert (await store.get_job(tenant, outcome.job.job_id)).attempts == 2
        allowed = await claim_one(store, outcome.job.job_id, attempts_below=3)
        assert allowed.started is not None
        assert allowed.started.attempts == 3

    async def test_claims_of_several_jobs_come_in_order_with_none_for_a_job_that_is_gone(self, store: Store) -> None:
        tenant = new_tenant()
        fresh = await store.record_upload(upload(tenant, "a.md", "a"))
        done = await store.record_upload(upload(tenant, "b.md", "b"))
        await store.start_job(done.job.job_id)
        await store.succeed_job(done.job.job_id, 2)
        tired = await store.record_upload(upload(tenant, "c.md", "c"))
        await store.start_job(tired.job.job_id)
        gone = str(uuid.uuid4())

        claims = await store.claim_jobs(
            [(done.job.job_id, None), (gone, None), (tired.job.job_id, 1), (fresh.job.job_id, 3)]
        )

        assert [c.job.job_id if c else None for c in claims] == [
            done.job.job_id,
            None,
            tired.job.job_id,
            fresh.job.job_id,
        ]
        finished, missing, refused, started = claims
        assert missing is None
        assert finished is not None
        assert (finished.job.state, finished.started) == (JobState.SUCCEEDED, None)
        assert refused is not None
        assert (refused.job.attempts, refused.started) == (1, None)
        assert started is not None
        assert started.started is not None
        assert (started.started.state, started.started.attempts) == (JobState.RUNNING, 1)
        assert started.document == await store.get_document(tenant, fresh.document.document_id)
        assert await store.claim_jobs([]) == []

    async def test_failed_job_keeps_its_reason(self, store: Store) -> None:
        tenant = new_tenant()
        outcome = await store.record_upload(upload(tenant))
        await store.start_job(outcome.job.job_id)
        failed = await store.fail_job(outcome.job.job_id, "the file is empty after parsing; upload text")
        assert failed.state == JobState.FAILED
        assert failed.error == "the file is empty after parsing; upload text"
        assert (await store.get_job(tenant, outcome.job.job_id)).error == failed.error

    async def test_job_operations_on_a_missing_job_raise_not_found(self, store: Store) -> None:
        missing = str(uuid.uuid4())
        with pytest.raises(NotFound):
            await store.get_job_any_tenant(missing)
        with pytest.raises(NotFound):
            await store.start_job(missing)
        with pytest.raises(NotFound):
            await store.set_job_progress(missing, 1, 1)
        with pytest.raises(NotFound):
            await store.succeed_job(missing, 1)
        with pytest.raises(NotFound):
            await store.fail_job(missing, "x")
        with pytest.raises(NotFound):
            await store.requeue_job(missing, "x")

    async def test_count_jobs_counts_by_state(self, store: Store) -> None:
        before_queued = await store.count_jobs(JobState.QUEUED)
        before_running = await store.count_jobs(JobState.RUNNING)
        tenant = new_tenant()
        first = await store.record_upload(upload(tenant, "a.md", "a"))
        await store.record_upload(upload(tenant, "b.md", "b"))
        await store.start_job(first.job.job_id)

        assert await store.count_jobs(JobState.QUEUED) == before_queued + 1
        assert await store.count_jobs(JobState.RUNNING) == before_running + 1

    async def test_corpus_version_grows_when_searchable_documents_change(self, store: Store) -> None:
        tenant, other = new_tenant(), new_tenant()
        assert await store.corpus_version(tenant) == 0
        outcome = await store.record_upload(upload(tenant))
        await store.start_job(outcome.job.job_id)
        await store.succeed_job(outcome.job.job_id, 3)
        after_success = await store.corpus_version(tenant)
        assert after_success > 0

        await store.delete_document(tenant, outcome.document.document_id)
        assert await store.corpus_version(tenant) > after_success
        assert await store.corpus_version(other) == 0

    # --- documents -------------------------------------------------------------------------------
    async def test_delete_document_removes_it_and_its_jobs(self, store: Store) -> None:
        tenant = new_tenant()
        outcome = await store.record_upload(upload(tenant))
        deleted = await store.delete_document(tenant, outcome.document.document_id)

        assert deleted.document_id == outcome.document.document_id
        assert deleted.blob_key == outcome.document.blob_key
        with pytest.raises(NotFound):
            await store.get_document(tenant, outcome.document.document_id)
        with pytest.raises(NotFound):
            await store.get_job(tenant, outcome.job.job_id)
        with pytest.raises(NotFound):
            await store.get_job_any_tenant(outcome.job.job_id)
        with pytest.raises(NotFound):
            await store.delete_document(tenant, outcome.document.document_id)
        assert (await store.list_jobs(tenant, None, 10)).items == []
        # The same content may be uploaded again afterwards, as a new document.
        again = await store.record_upload(upload(tenant))
        assert not again.deduplicated
        assert again.document.document_id != outcome.document.document_id

    async def test_missing_document_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.get_document(new_tenant(), str(uuid.uuid4()))

    # --- pagination ------------------------------------------------------------------------------
    async def test_documents_page_newest_first_without_gaps_or_repeats(self, store: Store) -> None:
        tenant = new_tenant()
        created = [
            (await store.record_upload(upload(tenant, f"doc-{i}.md", f"content-{i}"))).document for i in range(7)
        ]
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            page = await store.list_documents(tenant, 3, cursor)
            assert len(page.items) <= 3
            seen += [d.document_id for d in page.items]
            pages += 1
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert pages == 3
        assert seen == [d.document_id for d in reversed(created)]

    async def test_a_page_cursor_stays_valid_when_new_rows_arrive(self, store: Store) -> None:
        tenant = new_tenant()
        for i in range(4):
            await store.record_upload(upload(tenant, f"doc-{i}.md", f"c{i}"))
        first = await store.list_documents(tenant, 2)
        await store.record_upload(upload(tenant, "late.md", "late"))
        second = await store.list_documents(tenant, 2, first.next_cursor)

        assert [d.filename for d in first.items] == ["doc-3.md", "doc-2.md"]
        assert [d.filename for d in second.items] == ["doc-1.md", "doc-0.md"]

    async def test_jobs_page_and_filter_by_state(self, store: Store) -> None:
        tenant = new_tenant()
        outcomes = [await store.record_upload(upload(tenant, f"d{i}.md", f"c{i}")) for i in range(5)]
        await store.start_job(outcomes[1].job.job_id)
        await store.fail_job(outcomes[3].job.job_id, "bad")

        queued = await store.list_jobs(tenant, JobState.QUEUED, 2)
        rest = await store.list_jobs(tenant, JobState.QUEUED, 2, queued.next_cursor)
        assert [j.filename for j in queued.items] == ["d4.md", "d2.md"]
        assert [j.filename for j in rest.items] == ["d0.md"]
        assert rest.next_cursor == ""
        failed = await store.list_jobs(tenant, JobState.FAILED, 10)
        assert [j.job_id for j in failed.items] == [outcomes[3].job.job_id]
        everything = await store.list_jobs(tenant, None, 10)
        assert len(everything.items) == 5

    async def test_page_size_is_clamped_to_at_least_one(self, store: Store) -> None:
        tenant = new_tenant()
        for i in range(2):
            await store.record_upload(upload(tenant, f"d{i}.md", f"c{i}"))
        page = await store.list_documents(tenant, 0)
        assert len(page.items) == 1
        assert page.next_cursor

    async def test_a_cursor_that_was_not_issued_is_invalid_argument(self, store: Store) -> None:
        with pytest.raises(InvalidArgument):
            await store.list_documents(new_tenant(), 10, "not-a-cursor")

    # --- tenant isolation --------------------------------------------------------------------------
    async def test_tenants_never_see_each_others_data(self, store: Store) -> None:
        owner, intruder = new_tenant(), new_tenant()
        outcome = await store.record_upload(upload(owner, "secret.md", "secret"))
        conversation = await store.create_conversation(owner, "private")
        await store.append_turns(owner, conversation.conversation_id, [Turn(Role.USER, "hello")])
        await store.record_upload(upload(intruder, "mine.md", "mine"))

        assert [d.filename for d in (await store.list_documents(intruder, 10)).items] == ["mine.md"]
        assert [j.filename for j in (await store.list_jobs(intruder, None, 10)).items] == ["mine.md"]
        assert (await store.list_conversations(intruder, 10)).items == []
        with pytest.raises(NotFound):
            await store.get_document(intruder, outcome.document.document_id)
        with pytest.raises(NotFound):
            await store.get_job(intruder, outcome.job.job_id)
        with pytest.raises(NotFound):
            await store.delete_document(intruder, outcome.document.document_id)
        with pytest.raises(NotFound):
            await store.get_conversation(intruder, conversation.conversation_id)
        with pytest.raises(NotFound):
            await store.get_turns(intruder, conversation.conversation_id)
        with pytest.raises(NotFound):
            await store.append_turns(intruder, conversation.conversation_id, [Turn(Role.USER, "x")])
        # Nothing the intruder tried changed the owner's data.
        assert (await store.get_document(owner, outcome.document.document_id)).filename == "secret.md"
        assert len(await store.get_turns(owner, conversation.conversation_id)) == 1

    # --- conversations -----------------------------------------------------------------------------
    async def test_conversation_turns_round_trip_oldest_first(self, store: Store) -> None:
        tenant = new_tenant()
        conversation = await store.create_conversation(tenant, "Onboarding")
        assert conversation.turn_count == 0
        assert conversation.title == "Onboarding"
        assert await store.get_turns(tenant, conversation.conversation_id) == []  # none yet, not NOT_FOUND
        with pytest.raises(NotFound):
            await store.get_turns(tenant, "no-such-conversation")
        citation = Citation(1, "doc-1", "guide.md", "chunk-1", "Install with pip.", 0.87)
        asked_at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

        updated = await store.append_turns(
            tenant,
            conversation.conversation_id,
            [
                Turn(Role.USER, "How do I install it?", created_at=asked_at),
                Turn(Role.ASSISTANT, "With pip [1].", citations=(citation,)),
            ],
        )

        assert updated.turn_count == 2
        assert updated.updated_at >= conversation.updated_at
        turns = await store.get_turns(tenant, conversation.conversation_id)
        assert [(t.role, t.content) for t in turns] == [
            (Role.USER, "How do I install it?"),
            (Role.ASSISTANT, "With pip [1]."),
        ]
        assert turns[0].created_at == asked_at
        assert turns[1].citations == (citation,)
        assert turns[1].created_at is not None
        assert (await store.get_conversation(tenant, conversation.conversation_id)).turn_count == 2

    async def test_a_conversation_starts_with_its_first_turns_in_one_call(self, store: Store) -> None:
        tenant = new_tenant()
        citation = Citation(1, "doc-1", "guide.md", "chunk-1", "Install with pip.", 0.87)
        started = await store.start_conversation(
            tenant, "How do I install it?", [Turn(Role.USER, "How?"), Turn(Role.ASSISTANT, "pip [1].", (citation,))]
        )
        assert started.turn_count == 2
        assert started.title == "How do I install it?"
        turns = await store.get_turns(tenant, started.conversation_id)
        assert [(t.role, t.content, t.citations) for t in turns] == [
            (Role.USER, "How?", ()),
            (Role.ASSISTANT, "pip [1].", (citation,)),
        ]
        # ... and goes on like any other
        later = await store.append_turns(tenant, started.conversation_id, [Turn(Role.USER, "And then?")])
        assert later.turn_count == 3
        assert [t.content for t in await store.get_turns(tenant, started.conversation_id, max_turns=1)] == ["And then?"]
        assert (await store.list_conversations(tenant, 10)).items[0].conversation_id == started.conversation_id

    async def test_history_returns_only_the_most_recent_turns(self, store: Store) -> None:
        tenant = new_tenant()
        conversation = await store.create_conversation(tenant, "t")
        for i in range(5):
            await store.append_turns(tenant, conversation.conversation_id, [Turn(Role.USER, f"q{i}")])

        recent = await store.get_turns(tenant, conversation.conversation_id, max_turns=2)
        assert [t.content for t in recent] == ["q3", "q4"]
        everything = await store.get_turns(tenant, conversation.conversation_id, max_turns=0)
        assert [t.content for t in everything] == [f"q{i}" for i in range(5)]

    async def test_concurrent_appends_lose_no_turn(self, store: Store) -> None:
        tenant = new_tenant()
        conversation = await store.create_conversation(tenant, "busy")

        await asyncio.gather(
            *(
                store.append_turns(
                    tenant,
                    conversation.conversation_id,
                    [Turn(Role.USER, f"q{i}"), Turn(Role.ASSISTANT, f"a{i}")],
                )
                for i in range(10)
            )
        )

        turns = await store.get_turns(tenant, conversation.conversation_id)
        assert len(turns) == 20
        assert (await store.get_conversation(tenant, conversation.conversation_id)).turn_count == 20
        # Each append's pair stays together: question immediately followed by its answer.
        for question, answer in zip(turns[::2], turns[1::2], strict=True):
            assert answer.content == "a" + question.content[1:]

    async def test_append_to_a_missing_conversation_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.append_turns(new_tenant(), str(uuid.uuid4()), [Turn(Role.USER, "hi")])

    async def test_conversations_page_newest_first(self, store: Store) -> None:
        tenant = new_tenant()
        created = [await store.create_conversation(tenant, f"c{i}") for i in range(5)]
        first = await store.list_conversations(tenant, 3)
        second = await store.list_conversations(tenant, 3, first.next_cursor)
        assert [c.title for c in first.items + second.items] == [c.title for c in reversed(created)]
        assert second.next_cursor == ""

    # --- API keys ----------------------------------------------------------------------------------
    async def test_api_keys_are_found_by_hash_and_revoked(self, store: Store) -> None:
        tenant = new_tenant()
        key_hash = uuid.uuid4().hex * 2
        created = await store.create_api_key(tenant, "ci", key_hash)
        assert created.tenant_id == tenant
        assert created.name == "ci"
        assert not created.revoked

        assert await store.find_api_key(key_hash) == created
        assert await store.find_api_key(uuid.uuid4().hex * 2) is None

        revoked = await store.revoke_api_key(created.key_id)
        assert revoked.revoked
        found = await store.find_api_key(key_hash)
        assert found is not None
        assert found.revoked

    async def test_api_keys_are_listed_per_tenant_and_overall(self, store: Store) -> None:
        a, b = new_tenant(), new_tenant()
        key_a = await store.create_api_key(a, "one", uuid.uuid4().hex * 2)
        key_b = await store.create_api_key(b, "two", uuid.uuid4().hex * 2)

        assert [k.key_id for k in await store.list_api_keys(a)] == [key_a.key_id]
        everyone = {k.key_id for k in await store.list_api_keys()}
        assert {key_a.key_id, key_b.key_id} <= everyone

    async def test_api_key_errors(self, store: Store) -> None:
        key_hash = uuid.uuid4().hex * 2
        await store.create_api_key(new_tenant(), "first", key_hash)
        with pytest.raises(AlreadyExists):
            await store.create_api_key(new_tenant(), "second", key_hash)
        with pytest.raises(NotFound):
            await store.revoke_api_key(str(uuid.uuid4()))
