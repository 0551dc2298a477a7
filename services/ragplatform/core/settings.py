"""Typed settings, one class per service, read once from `RAG_`-prefixed environment variables.

These names are the contract with the operator (it renders them into Deployments) and with
`docs/configuration.md`. `load_settings()` validates at start-up and turns every problem into
one clear message that names the variable and what it accepts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragplatform.core.redaction import redact_text
from ragplatform.domain.prompts import DEFAULT_HISTORY_TURNS

ENV_PREFIX = "RAG_"
ServiceName = Literal["gateway", "ingestion", "ingestion-worker", "retrieval", "generation", "conversation"]
SERVICE_NAMES: tuple[ServiceName, ...] = (
    "gateway",
    "ingestion",
    "ingestion-worker",
    "retrieval",
    "generation",
    "conversation",
)


# The most calls in flight per process (RAG_MAX_IN_FLIGHT), a ceiling: the admission limit under
# it adapts to the event loop's lag and, at the gateway, to the Ask's latency budget
# (core/adaptive_limit.py, core/latency_budget.py); it never rises above the ceiling.
DEFAULT_MAX_IN_FLIGHT = 256
# The gateway's ceiling comes from its measured capacity. By Little's law a gateway serving R asks/s
# with each Ask within the SLO (the model's latency + 250 ms) holds R x (model + 250 ms) Asks on
# average; users arrive at random, so the count in flight at a steady rate is Poisson (M/G/inf) and
# the ceiling adds two of its standard deviations (2 x sqrt(mean)), or the ceiling itself refuses
# the bursts of a sustainable load. One gateway process with the Ask path on one shared core
# sustained ~60 asks/s against a 2 s model (bench/ask_throughput.py --sustainable: 38-90 asks/s
# over runs, median 60): 135 + 2 x 11.6 = 158. The adaptive limit still lowers it on a slower
# machine; nothing raises it, so a faster core or a slower model needs a higher ceiling by the
# same sum (the operator's `maxInFlight`). Side by side with 256 at 3x that rate (three clean
# pairs) it answered 1.1-1.5x as many asks within the SLO, accepted asks' p99 +0.48-0.88 s against
# +0.88-1.65 s, and at 0.8x it bound nothing; with 135 (no headroom) the capacity search's 55 and
# 60 asks/s failed on refusals alone (docs/performance.md, "A ceiling from the sustainable rate").
GATEWAY_SUSTAINABLE_ASKS_PER_SECOND = 60.0
GATEWAY_SIZING_MODEL_SECONDS = 2.0
ASK_ADDED_LATENCY_SLO_SECONDS = 0.25


def ceiling_for(asks_per_second: float, model_seconds: float) -> int:
    """The calls in flight a gateway needs to serve `asks_per_second` within the SLO: the mean
    count (Little's law, each Ask taking the model's time + the SLO's added latency) plus two
    standard deviations of that count under random arrivals (Poisson: sqrt of the mean)."""
    mean = asks_per_second * (model_seconds + ASK_ADDED_LATENCY_SLO_SECONDS)
    return round(mean + 2 * math.sqrt(mean))


GATEWAY_MAX_IN_FLIGHT = ceiling_for(GATEWAY_SUSTAINABLE_ASKS_PER_SECOND, GATEWAY_SIZING_MODEL_SECONDS)


def admission_burst_for(ceiling: int) -> int:
    """The calls a paced process admits at once after a quiet spell (its rate being its admission
    limit's calls once per RAG_ADMISSION_PACE_SECONDS): 2 x sqrt(ceiling), the bursts of random
    arrivals, as the ceiling's own headroom."""
    return max(1, round(2 * math.sqrt(ceiling)))


# A ceiling alone admits in waves at 3x its rate: each Ask that ends frees a slot that a waiting
# caller takes at once, so the asks admitted together end together a model's time later and free
# their slots together again (with a model of steady latency the wave keeps its shape). A wave of
# ~100 asks in 0.75 s needs ~1 s of the Ask path's one core, and its later asks queued in front of
# generation (p99 ~0.3 s; docs/performance.md, "Where the 3x tail went"). Admitting the ceiling's
# calls at most once per Ask's time within the SLO (158 / 2.25 s = 70 a second) spreads a wave over
# its cycle; at the sustainable rate neither binds.
GATEWAY_ADMISSION_PACE_SECONDS = GATEWAY_SIZING_MODEL_SECONDS + ASK_ADDED_LATENCY_SLO_SECONDS


# Standing event-loop lag above which a process lowers its admission limit. The gateway (the edge)
# sheds at a far lower lag than the services behind it: a call refused at the edge has cost nothing
# downstream, one refused inside has already cost the hops before it and fails an answer under way
# (measured: at 3x load with 0.05 s inside, generation refused more asks than the gateway did, all
# after their sources had been sent). Inside, shedding is the last resort against collapse.
EDGE_LAG_TARGET_SECONDS = 0.01
INTERNAL_LAG_TARGET_SECONDS = 0.25
# Standing lag above which a service behind the edge marks its answers congested, so the gateway
# lowers its own limit before anything has to be refused inside (ECN, as against a dropped packet).
# At 80 % load on one shared core generation's lag averaged 3-18 ms, at 3x 34-40 ms.
INTERNAL_MARK_LAG_SECONDS = 0.02
# How long the platform's share of an Ask (its time in the gateway less the model's) may queue at
# the median over its no-load value before the gateway cuts its admission limit by the gradient
# (core/latency_budget.py). On by default since the bench's capacity is the sustainable rate (p99
# within 250 ms over the model, nothing refused): against it, side by side at the same rates, the
# budget answered as many asks at 3x as the lag and congestion signals alone, more of them in time,
# refused faster, and refused nothing at 0.8x where congestion marks alone cut the limit under the
# load (docs/performance.md, "Issue 8 against the sustainable rate").
DEFAULT_ADMISSION_LATENCY_TARGET_SECONDS = 0.1


def admission_lag_target(settings: CommonSettings, edge: bool) -> float:
    """RAG_ADMISSION_LAG_TARGET_SECONDS, or its default for the edge (the gateway) or a service
    behind it."""
    if settings.admission_lag_target_seconds is not None:
        return settings.admission_lag_target_seconds
    return EDGE_LAG_TARGET_SECONDS if edge else INTERNAL_LAG_TARGET_SECONDS


def _max_in_flight_field(default: int) -> Any:
    """RAG_MAX_IN_FLIGHT with `default`: one description for every service, whose defaults differ."""
    return Field(
        default,
        ge=1,
        le=100_000,
        description="The most calls one process takes at once (streamed Asks count until they end): the "
        "ceiling of its adaptive admission limit. The excess is refused at once with RESOURCE_EXHAUSTED and "
        "a retry-after hint. Health checks are never refused. The gateway's default comes from its capacity "
        f"measured on one core, {GATEWAY_SUSTAINABLE_ASKS_PER_SECOND:g} asks/s with a "
        f"{GATEWAY_SIZING_MODEL_SECONDS:g} s model: the Asks in flight at that rate when each takes the model's "
        f"time + {ASK_ADDED_LATENCY_SLO_SECONDS:g} s (N = rate x time), plus 2 x sqrt(N) for random arrivals. "
        "For a faster core or a slower model raise it by the same sum.",
    )


def _admission_pace_field(default: float) -> Any:
    """RAG_ADMISSION_PACE_SECONDS with `default`: one description for every service, whose defaults differ."""
    return Field(
        default,
        ge=0,
        le=3600,
        description="Admit at most the admission limit's calls per this many seconds, paced evenly: "
        "RAG_MAX_IN_FLIGHT's while the limit is at its ceiling, fewer while the lag or the latency budget holds "
        "it lower (at the gateway only Asks count; elsewhere every method together; health checks never count), "
        "with 2 x sqrt(RAG_MAX_IN_FLIGHT) at once after a quiet spell; the excess is refused at once with "
        "RESOURCE_EXHAUSTED and a retry-after hint. Set it to the time a call takes (at the gateway, an Ask: "
        "the model's time + the SLO's added latency). Under overload a ceiling alone admits in waves "
        "(a freed slot is taken at once, so calls admitted together end "
        "together and free their slots together), and a wave queues on a busy core. 0: no pace, only "
        f"RAG_MAX_IN_FLIGHT and the adaptive limit. The gateway's default, {GATEWAY_ADMISSION_PACE_SECONDS:g} "
        f"s, is its sizing model's {GATEWAY_SIZING_MODEL_SECONDS:g} s + {ASK_ADDED_LATENCY_SLO_SECONDS:g} s "
        f"({GATEWAY_MAX_IN_FLIGHT} / {GATEWAY_ADMISSION_PACE_SECONDS:g} s = "
        f"{GATEWAY_MAX_IN_FLIGHT / GATEWAY_ADMISSION_PACE_SECONDS:.0f} Asks a second); for a slower model "
        "raise it with RAG_MAX_IN_FLIGHT.",
    )


class SettingsError(Exception):
    """Start-up configuration is invalid; the message lists each bad variable."""


def _valid_port(url: str) -> str:
    """A URL whose port, when it has one, is a number from 1 to 65535 (the message never quotes
    the URL: it may hold a password)."""
    if "://" in url:
        try:
            port = urlsplit(url).port
        except ValueError:
            port = -1
        if port is not None and not 0 < port < 65536:
            raise ValueError("the port after the host must be a number from 1 to 65535 (scheme://host:PORT/...)")
    return url


def _valid_secret_port(url: SecretStr | None) -> SecretStr | None:
    if url is not None:
        _valid_port(url.get_secret_value())
    return url


# A URL setting: its port, if any, is checked at start-up.
Url = Annotated[str, AfterValidator(_valid_port)]
SecretUrl = Annotated[SecretStr | None, AfterValidator(_valid_secret_port)]


class CommonSettings(BaseSettings):
    """Settings every service process reads."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Lowest log level written.")
    log_format: Literal["json", "console"] = Field(
        "json", description="`json` (one object per line, for collectors) or `console` (for people)."
    )
    grpc_host: str = Field("[::]", description="Address the gRPC server binds to.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one).")
    metrics_port: int = Field(9090, ge=0, le=65535, description="Prometheus /metrics HTTP port (0 picks a free one).")
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics.")
    grace_period_seconds: float = Field(
        20.0, gt=0, le=3600, description="On SIGTERM, time allowed for in-flight calls to finish."
    )
    drain_delay_seconds: float = Field(
        2.0,
        ge=0,
        le=300,
        description="On SIGTERM, keep accepting calls this long while health reports NOT_SERVING, so "
        "load balancers and clients stop routing here before the server stops taking new calls.",
    )
    internal_token: SecretStr | None = Field(
        None,
        description="Shared secret the gateway and workers send to internal services, which refuse "
        "calls without it. Required (the operator generates one; `ragplatform dev` makes one) unless "
        "RAG_INSECURE_INTERNAL_CALLS is true. Also the key page tokens are signed with.",
    )
    insecure_internal_calls: bool = Field(
        False,
        description="Tests only: run without RAG_INTERNAL_TOKEN, so internal services answer any "
        "caller that reaches their port. Never in production.",
    )
    data_dir: Path = Field(
        Path(".ragplatform"),
        description="Directory of the embedded backends' files (SQLite, blobs, vectors).",
    )
    max_in_flight: int = _max_in_flight_field(DEFAULT_MAX_IN_FLIGHT)
    admission_pace_seconds: float = _admission_pace_field(0.0)
    admission_lag_target_seconds: float | None = Field(
        None,
        ge=0,
        le=10,
        description="Standing event-loop lag (the smallest over 100 ms) above which the process lowers its "
        "admission limit, so that it refuses at once what it could only queue; the limit climbs back while "
        f"the loop keeps up. Empty: {EDGE_LAG_TARGET_SECONDS:g} s at the gateway (the edge, where a refusal "
        f"costs nothing downstream), {INTERNAL_LAG_TARGET_SECONDS:g} s in the services behind it. "
        "0: a fixed limit of RAG_MAX_IN_FLIGHT.",
    )
    admission_mark_lag_seconds: float = Field(
        INTERNAL_MARK_LAG_SECONDS,
        ge=0,
        le=10,
        description="Services behind the gateway: standing event-loop lag above which a service marks its "
        "answers congested (trailing metadata), and the gateway that made the call lowers its admission "
        "limit as for a refusal, before this service has to refuse anything. 0: never mark. The gateway "
        "itself never marks.",
    )
    admission_latency_target_seconds: float = Field(
        DEFAULT_ADMISSION_LATENCY_TARGET_SECONDS,
        ge=0,
        le=60,
        description="The gateway: how long the platform's own share of an Ask (its time in the gateway less "
        "the model's, as the generation service measured it) may queue at the median of recent answers over its "
        "no-load value (the least median of the last minute); over it, the admission limit falls by the "
        "gradient (model + no-load share + half of this) / (model + share), as Netflix's gradient limits judge "
        "latency, and while answers queue less than half of it a limit that holds calls back rises by its square "
        "root once per round trip of an Ask. It sees what the gateway's loop lag does not: calls waiting in the "
        "services behind it (their gRPC queues, their loops); while it governs, their congestion marks do not "
        "cut the limit. 0: not judged (the limit follows loop lag and congestion marks only).",
    )
    admission_retry_after_seconds: float = Field(
        1.0, gt=0, le=60, description="Retry-after hint sent with a call refused by admission control."
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="The process's event loop: `uvloop` (less CPU per call) or `asyncio` (Python's own; "
        "the way back should a library misbehave on uvloop).",
    )


class StoreSettings(CommonSettings):
    store_url: Url = Field(
        "",
        description="`sqlite:///PATH` or `postgresql://USER@HOST:PORT/DB`; empty: SQLite in RAG_DATA_DIR.",
    )
    store_password: SecretStr | None = Field(
        None, description="Password for RAG_STORE_URL (kept out of the URL so it can come from a Secret)."
    )
    store_pool_min: int = Field(1, ge=0, le=100, description="PostgreSQL pool: connections kept open.")
    store_pool_max: int = Field(10, ge=1, le=1000, description="PostgreSQL pool: most connections.")
    store_migrate: bool = Field(True, description="Apply schema migrations at start-up.")
    store_timeout_seconds: float = Field(5.0, gt=0, description="Per-statement timeout.")

    @field_validator("store_url")
    @classmethod
    def _known_store_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:// or postgresql:// (or be empty for the embedded SQLite)")
        return value


class QueueSettings(StoreSettings):
    queue_url: Url = Field(
        "",
        description="`redis://HOST:PORT/DB` for Redis Streams; empty: the queue lives in the SQLite store.",
    )
    queue_name: str = Field("ingestion", description="Stream / queue name.")
    visibility_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="A received job not acked within this is delivered again; a worker extends it every third of "
        "it while the job runs, so only a stopped or stalled worker's job is delivered again.",
    )
    job_max_attempts: int = Field(3, ge=1, le=100, description="Attempts before a job is FAILED and dead-lettered.")


class BlobSettings(CommonSettings):
    blob_url: Url = Field("", description="`file:///DIR` or `s3://BUCKET[/PREFIX]`; empty: RAG_DATA_DIR/blobs.")
    s3_endpoint_url: Url = Field("", description="S3-compatible endpoint (empty: AWS).")
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key_id: SecretStr | None = Field(None, description="S3 access key id (empty: the AWS default chain).")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret access key.")


class EmbedderSettings(CommonSettings):
    embedder: Literal["minilm", "e5-small", "hashing", "openai"] = Field(
        "minilm",
        description="`minilm` (local all-MiniLM-L6-v2), `e5-small` (local multilingual-e5-small, 4-bit; "
        "both need the local-embeddings extra), `openai` (an OpenAI-compatible endpoint) or `hashing` "
        "(lexical feature hashing, no model).",
    )
    embedding_url: Url = Field("", description="Base URL of the OpenAI-compatible embeddings endpoint.")
    embedding_model: str = Field("text-embedding-3-small", description="Embedding model name at that endpoint.")
    embedding_api_key: SecretStr | None = Field(None, description="API key for the embeddings endpoint.")
    embedding_dimension: int = Field(384, ge=8, le=8192, description="Vector size (openai and hashing embedders).")
    embedding_timeout_seconds: float = Field(30.0, gt=0, description="Per-request timeout to the endpoint.")
    embedding_max_concurrency: int = Field(
        64, ge=1, le=4096, description="Embedding requests one process keeps in flight at once."
    )
    minilm_query_runtime: Literal["onnx", "torch"] = Field(
        "onnx",
        description="How `minilm` embeds a single query: `onnx` (ONNX Runtime on one thread, a graph exported "
        "from the installed weights at first use into RAG_MODEL_CACHE_DIR; less than half the CPU) or "
        "`torch` (sentence-transformers, as documents are). Same vectors either way; `onnx` falls back to "
        "`torch` with a warning when it cannot run.",
    )
    minilm_query_precision: Literal["fp32", "int8"] = Field(
        "fp32",
        description="The weights of `minilm`'s ONNX query graph: `fp32` (the model's own vectors) or `int8` "
        "(most MatMul weights quantized per channel at first use, cached beside the fp32 graph: ~0.6 of the "
        "CPU per query, vectors at cosine ~0.997 of fp32's; moves single questions, docs/retrieval.md). "
        "Documents are embedded in fp32 either way.",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where models derived from installed weights are kept (MiniLM's exported ONNX query graph, "
        "~90 MB); processes may share it. Unset: RAG_DATA_DIR/model-cache. Unwritable: kept in memory, "
        "exported again at each start.",
    )

    @property
    def model_cache(self) -> Path:
        """RAG_MODEL_CACHE_DIR, or its default under RAG_DATA_DIR."""
        return self.model_cache_dir or self.data_dir / "model-cache"


class VectorServerSettings(CommonSettings):
    """Where the Qdrant server is: read by retrieval and, to write chunks directly, by workers."""

    vector_url: Url = Field(
        "",
        description="`http(s)://HOST:6333` for a Qdrant server; empty: the embedded engine in RAG_DATA_DIR "
        "(retrieval's; workers then store chunks through the retrieval service).",
    )
    vector_api_key: SecretStr | None = Field(None, description="Qdrant API key.")
    vector_collection: str = Field("ragplatform_chunks", description="Collection name.")


class VectorSettings(VectorServerSettings):
    vector_index_threshold: int = Field(
        20_000,
        ge=0,
        le=1_000_000_000,
        description="Embedded store: once this many chunks have no HNSW index, one is built in the "
        "background (in a separate process; searches and writes go on, new chunks are searched exactly "
        "until the next build). Smaller stores, and filters leaving fewer chunks, are searched exactly. "
        "0: never build an index.",
    )
    vector_index_settle_seconds: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="Embedded store: a build starts only after no write for this long, so a bulk "
        "ingestion is indexed once, at its end.",
    )
    vector_index_build_threads: int = Field(
        1,
        ge=0,
        le=1024,
        description="Embedded store: cores an index build uses (0: all). The build runs niced; one "
        "core leaves the others to searches.",
    )
    vector_search_threads: int = Field(
        1,
        ge=0,
        le=1024,
        description="Embedded store: threads a search runs on (0: the engine's default pool, four per core). With 1 "
        "it runs on the calling thread: a pool's threads wake and spin for every search, ~0.3 ms of CPU "
        "per Search on a small store (docs/performance.md); more threads search a many-segment store's "
        "segments in parallel on a machine with cores to spare.",
    )
    vector_hnsw_m: int = Field(
        16,
        ge=4,
        le=128,
        description="Embedded store: links per chunk in the HNSW graph (more: better recall, bigger index).",
    )
    vector_hnsw_ef_construct: int = Field(
        100,
        ge=8,
        le=4096,
        description="Embedded store: candidates considered while building the graph (more: better graph, "
        "slower build).",
    )
    vector_hnsw_ef: int = Field(
        128,
        ge=1,
        le=100_000,
        description="Embedded store: candidates an indexed search examines (more: better recall, slower search).",
    )


class UpstreamSettings(CommonSettings):
    """Addresses of the internal services the gateway calls."""

    ingestion_addr: str = Field("127.0.0.1:50052", description="host:port of the ingestion service.")
    retrieval_addr: str = Field("127.0.0.1:50053", description="host:port of the retrieval service.")
    generation_addr: str = Field("127.0.0.1:50054", description="host:port of the generation service.")
    conversation_addr: str = Field("127.0.0.1:50055", description="host:port of the conversation service.")


class TopKSettings(CommonSettings):
    """One limit on passages per request, read by the gateway (which refuses a larger top_k) and
    by retrieval (which refuses it from any other caller)."""

    max_top_k: int = Field(50, ge=1, le=1000, description="Largest top_k accepted.")


class HistorySettings(CommonSettings):
    """One limit on conversation context, read by the gateway (the turns it fetches) and by
    generation (the turns it puts in the prompt, whoever calls it)."""

    max_history_turns: int = Field(
        DEFAULT_HISTORY_TURNS, ge=0, le=1000, description="Latest conversation turns an answer sees as context."
    )


class GatewaySettings(UpstreamSettings, StoreSettings, TopKSettings, HistorySettings):
    max_in_flight: int = _max_in_flight_field(GATEWAY_MAX_IN_FLIGHT)
    admission_pace_seconds: float = _admission_pace_field(GATEWAY_ADMISSION_PACE_SECONDS)
    redis_url: SecretUrl = Field(
        None, description="Redis for rate limits and the answer cache; empty: in-process (one replica only)."
    )
    api_key_revocation_poll_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="How often the gateway checks the store for revoked API keys (a revoked key stops "
        "working on every replica within this).",
    )
    rate_limit_rps: float = Field(20.0, gt=0, description="Requests per second allowed per API key.")
    rate_limit_burst: int = Field(40, ge=1, description="Requests an API key may make at once.")
    answer_cache_ttl_seconds: int = Field(600, ge=0, description="Answer cache lifetime; 0 disables the cache.")
    tenant_daily_token_budget: int = Field(
        0, ge=0, description="LLM tokens a tenant may spend per UTC day (0: unlimited); past it, Ask is refused."
    )
    default_top_k: int = Field(5, ge=1, le=50, description="Passages retrieved when a request does not say.")
    ask_timeout_seconds: float = Field(
        60.0, gt=0, description="Deadline for an Ask when the client sets none (or a longer one)."
    )
    max_question_chars: int = Field(4000, ge=1, description="Longest question accepted.")


class IngestionSettings(QueueSettings, BlobSettings):
    max_upload_bytes: int = Field(
        50 * 1024 * 1024,
        ge=1,
        description="Largest file accepted; larger uploads fail with INVALID_ARGUMENT.",
    )
    retrieval_addr: str = Field(
        "127.0.0.1:50053", description="host:port of the retrieval service (to delete a document's chunks)."
    )
    queue_payload_max_kb: int = Field(
        16,
        ge=0,
        le=1024,
        description="Uploads up to this size travel to the worker with their job's queue message (Redis queue; "
        "kept 5 minutes) as well as being stored in the object store, saving the worker an object-store read "
        "per small document; 0: never. Costs Redis memory: about 1.33 x this per upload of the last 5 minutes.",
    )


class ParseSettings(CommonSettings):
    """Bounds on parsing one uploaded document (see ingestion/parse_sandbox.py)."""

    parse_processes: int = Field(
        2, ge=1, le=64, description="Sandboxed parser processes per worker (documents parsed at once)."
    )
    parse_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Longest a document may take to parse; then it fails and its parser is replaced.",
    )
    parse_memory_mb: int = Field(
        1024, ge=256, le=65536, description="Address space of each parser process; a document needing more fails."
    )
    parse_max_content_mb: int = Field(
        64,
        ge=1,
        le=4096,
        description="Most a document's compressed content (PDF page streams, summed) may expand to; more fails.",
    )
    parse_max_pages: int = Field(2000, ge=1, le=1_000_000, description="Most pages a PDF may have.")
    parse_in_process_max_kb: int = Field(
        64,
        ge=0,
        le=10240,
        description="Plain-text and HTML files up to this size parse in the worker itself (their parsers are "
        "linear; no round trip to a parser process); 0 sends every file to the sandbox.",
    )


class WorkerSettings(QueueSettings, BlobSettings, EmbedderSettings, ParseSettings, VectorServerSettings):
    """With RAG_VECTOR_URL (a Qdrant server) a worker writes and trims chunks in Qdrant itself; without
    it (the embedded engine lives in the retrieval process) it sends them to the retrieval service."""

    retrieval_addr: str = Field("127.0.0.1:50053", description="host:port of the retrieval service.")
    worker_concurrency: int = Field(
        32,
        ge=1,
        le=64,
        description="Jobs one worker process runs at once (one receive takes as many messages); a slow document "
        "holds up only its own slot while others go on. Each job in hand holds its document: lower it for "
        "very large files.",
    )
    chunk_tokens: int = Field(256, ge=16, le=8192, description="Target chunk size in tokens.")
    chunk_overlap_tokens: int = Field(32, ge=0, le=4096, description="Tokens repeated between neighbours.")
    embed_batch_size: int = Field(32, ge=1, le=2048, description="Chunks embedded per batch.")
    chunk_heading_weight: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Weight of the document heading's own embedding added to each chunk's vector (a "
        "document-topic prior; 0 turns it off) for a document that marks no sections (plain text, PDF, Word). "
        "The heading is always prepended to the embedded text.",
    )
    chunk_sectioned_heading_weight: float = Field(
        0.0,
        ge=0,
        le=1,
        description="The same weight for a document that marks its sections (HTML and Markdown headings), whose "
        "chunks' embedded text already names the page and the section (0: not folded in).",
    )
    chunk_document_weight: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Weight of the mean of the document's chunk embeddings added to each chunk's vector (0 turns "
        "it off). Above 0 a document is embedded whole before its chunks are indexed. Applies to chunks indexed "
        "from now on; existing chunks keep their vectors until their document is re-indexed.",
    )
    retry_backoff_seconds: float = Field(5.0, ge=0, description="First retry delay; doubles per attempt.")
    job_attempt_timeout_seconds: float = Field(
        1800.0,
        ge=0,
        description="Longest one attempt at a job (parse, embed, index) may run; then it is stopped and retried "
        "like any failed attempt (0: no limit). Generous: it bounds a backend that hangs, not a large document.",
    )
    poll_seconds: float = Field(1.0, gt=0, description="Longest wait for a message before polling again.")
    lost_message_sweep_seconds: float = Field(
        60.0,
        ge=0,
        description="How often a worker looks for QUEUED or RUNNING jobs whose queue message was lost and "
        "enqueues them again (0: never).",
    )
    lost_message_after_seconds: float = Field(
        300.0,
        gt=0,
        description="A QUEUED or RUNNING job untouched this long, with no message in the queue, counts as lost.",
    )

    @model_validator(mode="after")
    def _overlap_below_chunk_size(self) -> WorkerSettings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"RAG_CHUNK_OVERLAP_TOKENS ({self.chunk_overlap_tokens}) must be smaller than "
                f"RAG_CHUNK_TOKENS ({self.chunk_tokens})"
            )
        return self


class RerankSettings(CommonSettings):
    rerank: Literal["none", "remote", "llm"] = Field(
        "none",
        description="Reranking stage after hybrid search: `none`, `remote` (a `/rerank` server such as "
        "Hugging Face TEI or Infinity) or `llm` (the OpenAI-compatible chat endpoint ranks the candidates).",
    )
    rerank_url: str = Field(
        "", description="Base URL of the reranker (`remote`: the TEI/Infinity server; `llm`: the chat endpoint)."
    )
    rerank_model: str = Field("", description="Model name sent to the reranker (required for `llm`).")
    rerank_api_key: SecretStr | None = Field(None, description="API key for the reranker.")
    rerank_timeout_seconds: float = Field(10.0, gt=0, le=300, description="Per-request timeout to the reranker.")
    rerank_candidates: int = Field(
        20, ge=1, le=200, description="Candidates handed to the reranker (at least top_k); it returns the best top_k."
    )

    @model_validator(mode="after")
    def _reranker_is_reachable(self) -> RerankSettings:
        if self.rerank == "remote" and not self.rerank_url:
            raise ValueError("RAG_RERANK=remote needs RAG_RERANK_URL (the base URL of the /rerank server)")
        if self.rerank == "llm" and not self.rerank_model:
            raise ValueError("RAG_RERANK=llm needs RAG_RERANK_MODEL (and RAG_RERANK_URL unless it is OpenAI)")
        return self


class RetrievalSettings(VectorSettings, EmbedderSettings, TopKSettings, RerankSettings):
    retrieval_mode: Literal["hybrid", "dense", "sparse"] = Field(
        "hybrid",
        description="`hybrid` (dense and BM25-style sparse candidates fused in one store query), "
        "`dense` (embeddings only) or `sparse` (BM25 only). See docs/retrieval.md.",
    )
    fusion: Literal["relative", "rrf", "dbsf"] = Field(
        "relative",
        description="How hybrid fuses the two candidate lists: `relative` (each list's scores min-max "
        "normalised, then a weighted sum; measured in docs/retrieval.md), `rrf` (reciprocal rank fusion, "
        "weighted) or `dbsf` (distribution-based score fusion; ignores the weights).",
    )
    fusion_dense_weight: float = Field(1.0, ge=0, le=100, description="Weight of the dense list.")
    fusion_sparse_weight: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Weight of the sparse list; unset: 0.5 with `relative`, 1 with `rrf` "
        "(measured in docs/retrieval.md).",
    )
    fusion_rrf_k: int = Field(
        60,
        ge=1,
        le=1000,
        description="RRF's rank constant k: score = sum of 1 / (rank / weight + k - 1) (Qdrant's weighted RRF).",
    )
    fusion_candidates: int = Field(
        50, ge=1, le=1000, description="Candidates each list contributes before fusion (at least top_k)."
    )
    sparse_pair_weight: float = Field(
        1.0,
        ge=0,
        le=100,
        description='Weight of each pair of adjacent query words ("block size") as a sparse term beside the '
        "words (weight 1); 0: words only, plain BM25. Read at query time (measured in docs/retrieval.md).",
    )
    query_vector_cache_size: int = Field(
        1024,
        ge=0,
        le=1_000_000,
        description="Query vectors kept per retrieval process (LRU, keyed by tenant and exact query text; ~3 KB "
        "each at 384 dimensions): a repeated question skips the embedding model. 0: no cache.",
    )


class GenerationSettings(HistorySettings):
    llm: Literal["extractive", "openai"] = Field(
        "extractive",
        description="`extractive` (quotes the best passages, no model) or `openai` (an OpenAI-compatible endpoint).",
    )
    llm_url: Url = Field("", description="Base URL of the OpenAI-compatible chat endpoint.")
    llm_model: str = Field("gpt-4o-mini", description="Chat model name.")
    llm_fallback_model: str = Field("", description="Model tried when the primary fails or times out.")
    llm_api_key: SecretStr | None = Field(None, description="API key for the chat endpoint.")
    llm_timeout_seconds: float = Field(30.0, gt=0, description="Per-request timeout to the endpoint.")
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed request before falling back.")
    llm_max_tokens: int = Field(512, ge=1, le=32768, description="Default upper bound on answer tokens.")
    answer_delta_interval_seconds: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Least time between two streamed pieces of an answer after the first (which goes at once): "
        "the tokens the model streams meanwhile go together, so each hop handles fewer messages. 0: every token "
        "as soon as the stream can take it.",
    )
    query_rewrite: Literal["auto", "llm", "lexical", "off"] = Field(
        "auto",
        description="How a follow-up question in a conversation is rewritten into a standalone search query: "
        "`llm` (by the chat model, falling back to `lexical` on error), `lexical` (adds the key words of the "
        "previous questions), `off`; `auto`: `llm` when RAG_LLM=openai, else `lexical`.",
    )
    query_rewrite_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="Longest wait for the model's rewrite before the lexical one is used."
    )
    query_rewrite_max_tokens: int = Field(64, ge=8, le=1024, description="Upper bound on a rewritten query's tokens.")

    @model_validator(mode="after")
    def _llm_rewrite_needs_a_model(self) -> GenerationSettings:
        if self.query_rewrite == "llm" and self.llm != "openai":
            raise ValueError(
                "RAG_QUERY_REWRITE=llm needs a language model: set RAG_LLM=openai (and RAG_LLM_URL), "
                "or use RAG_QUERY_REWRITE=auto or lexical"
            )
        return self


class ConversationSettings(StoreSettings):
    pass


SETTINGS_BY_SERVICE: dict[str, type[CommonSettings]] = {
    "gateway": GatewaySettings,
    "ingestion": IngestionSettings,
    "ingestion-worker": WorkerSettings,
    "retrieval": RetrievalSettings,
    "generation": GenerationSettings,
    "conversation": ConversationSettings,
}

S = TypeVar("S", bound=CommonSettings)


def require_internal_auth(settings: CommonSettings) -> None:
    """Refuse to serve without the internal token, unless explicitly told it is a test."""
    if settings.internal_token is None and not settings.insecure_internal_calls:
        raise SettingsError(
            "RAG_INTERNAL_TOKEN is not set: internal services refuse calls without it, and the gateway "
            "and workers need it to call them. Set the same random secret on every service (the "
            "operator generates one; `ragplatform dev` makes its own), or, for tests only, "
            "RAG_INSECURE_INTERNAL_CALLS=true."
        )


def env_var_names(settings_cls: type[CommonSettings]) -> set[str]:
    """Every environment variable a settings class reads."""
    return {ENV_PREFIX + name.upper() for name in settings_cls.model_fields}


def load_settings(settings_cls: type[S], **overrides: Any) -> S:
    """Read and validate settings; raise `SettingsError` naming every bad variable."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across several variables: its message names them
                problems.append(f"  {error['msg'].removeprefix('Value error, ')}")
                continue
            var = ENV_PREFIX + str(error["loc"][0]).upper()
            problems.append(f"  {var}={error.get('input')!r}: {error['msg']}")
        # The message repeats the bad values: a URL among them may carry a password.
        raise SettingsError(
            redact_text(
                f"invalid configuration for {settings_cls.__name__}:\n"
                + "\n".join(problems)
                + "\nFix these environment variables (see docs/configuration.md) and start again."
            )
        ) from None
