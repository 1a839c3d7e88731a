-- The proxy's ledger (same DDL as clawhost_api.usage.LEDGER_DDL, idempotent): the usage route reads per-day series.
CREATE TABLE IF NOT EXISTS token_ledger (
    request_id        text PRIMARY KEY,
    customer          text        NOT NULL,
    tier              text        NOT NULL,
    model             text        NOT NULL,
    prompt_tokens     integer     NOT NULL,
    completion_tokens integer     NOT NULL,
    latency_ms        integer     NOT NULL,
    status            integer     NOT NULL,
    estimated         boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS token_ledger_customer_time ON token_ledger (customer, created_at);
