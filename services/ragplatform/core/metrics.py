"""Prometheus metrics shared by every service, and the HTTP endpoint that serves them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

GRPC_HANDLED = Counter(
    "ragplatform_grpc_server_handled_total",
    "gRPC calls completed, by method and status code",
    ["method", "code"],
)
GRPC_LATENCY = Histogram(
    "ragplatform_grpc_server_handling_seconds",
    "Time to complete a gRPC call (streams included), by method",
    ["method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
GRPC_IN_FLIGHT = Gauge("ragplatform_grpc_server_in_flight", "gRPC calls in progress, by method", ["method"])
# Admission control (core/interceptors/admission.py): saturation shows here before latency does.
ADMISSION_IN_FLIGHT = Gauge(
    "ragplatform_admission_in_flight", "Calls this process has in flight (every method), by service", ["service"]
)
ADMISSION_LIMIT = Gauge(
    "ragplatform_admission_limit",
    "Calls this process takes at once now: its adaptive limit, at most RAG_MAX_IN_FLIGHT, by service",
    ["service"],
)
ADMISSION_CUTS = Counter(
    "ragplatform_admission_cuts_total",
    "Times the admission limit was cut, by service and what said overload: lag (the event loop's), latency "
    "(the platform's share of recent Asks over its budget), upstream (a call on the Ask path refused for "
    "capacity or marked congested)",
    ["service", "reason"],
)
GRPC_REFUSED = Counter(
    "ragplatform_grpc_server_refused_total",
    "Calls refused at once because the process was at its admission limit, by service and method",
    ["service", "method"],
)
ADMISSION_QUEUE_SECONDS = Histogram(
    "ragplatform_admission_queue_seconds",
    "Time from a call's start as its client or proxy stamped it (x-request-start) to admission control "
    "admitting or refusing it: the wait in front of the process (gRPC's queue). Only calls carrying the "
    "header (every call between services carries its caller's stamp); by service and outcome (admitted, refused)",
    ["service", "outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ASK_PLATFORM_SECONDS = Histogram(
    "ragplatform_ask_platform_seconds",
    "The platform's own share of each answered Ask: its time from admission to its answer, less the model's "
    "time as the generation service measured it — what users wait for beyond the model, and what the "
    "admission limit's latency budget (RAG_ADMISSION_LATENCY_TARGET_SECONDS) judges; by service",
    ["service"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 1, 2.5, 5, 10),
)
EVENT_LOOP_LAG = Histogram(
    "ragplatform_event_loop_lag_seconds",
    "How late the event loop ran a timer (sampled every 25 ms): the process's own queueing delay, by service",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

JOBS_FINISHED = Counter("ragplatform_ingestion_jobs_total", "Ingestion jobs finished, by outcome", ["outcome"])
CHUNKS_INDEXED = Counter("ragplatform_ingestion_chunks_total", "Chunks embedded and indexed")
QUEUE_DEPTH = Gauge("ragplatform_ingestion_queue_depth", "Ingestion messages waiting or in flight")
ANSWER_CACHE = Counter("ragplatform_answer_cache_total", "Answer cache lookups, by result", ["result"])
TOKENS_USED = Counter(
    "ragplatform_llm_tokens_total",
    "Tokens spent by the answer model, by tenant, model and kind (prompt or completion)",
    ["tenant", "model", "kind"],
)
LLM_SECONDS = Histogram(
    "ragplatform_llm_request_seconds",
    "Time to stream one answer from the answer model (request to last token), by model and outcome",
    ["model", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
)
LLM_FIRST_TOKEN_SECONDS = Histogram(
    "ragplatform_llm_time_to_first_token_seconds",
    "Time from asking the answer model to its first answer text, by model",
    ["model"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
JOB_WAIT_SECONDS = Histogram(
    "ragplatform_ingestion_job_wait_seconds",
    "Time from upload to a worker starting the job's first attempt (how old the backlog is)",
    buckets=(0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600),
)
JOB_STAGE_SECONDS = Histogram(
    "ragplatform_ingestion_job_stage_seconds",
    "Where a worker's job spends its time, by stage: receive (a queue receive that brought messages),"
    " claim (reading the job and document, starting the attempt), pipeline (parse, chunk, embed),"
    " index (writing the chunks, a shared write's wait included), finish (recording success), ack",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INDEX_WRITE_DOCUMENTS = Histogram(
    "ragplatform_ingestion_index_write_documents",
    "Documents per chunk write to the retrieval service (a worker's concurrent jobs share writes)",
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
)
WORKER_CALL_JOBS = Histogram(
    "ragplatform_ingestion_worker_call_jobs",
    "Jobs per store or queue call of a worker (claim, success, ack): its concurrent jobs share calls",
    ["call"],
    buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64),
)
JOB_SECONDS = Histogram(
    "ragplatform_ingestion_job_seconds",
    "Time a worker spent on one attempt at a job, by outcome (succeeded, rejected, error)",
    ["outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)


def start_metrics_server(host: str, port: int) -> int:
    """Serve /metrics on a daemon thread; return the bound port (useful when port is 0)."""
    server, _thread = start_http_server(port, addr=host)
    return int(server.server_port)
