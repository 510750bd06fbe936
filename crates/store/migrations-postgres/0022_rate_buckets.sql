-- Per-key rate limits shared by replicas: one GCRA bucket per API key. `full_at` is when the
-- bucket would be full again (nanoseconds since the Unix epoch); `leased` is how many requests
-- the last lease took, so that one upsert both takes a lease and says what it took (RETURNING
-- shows only the row after the update). A removed key takes its bucket with it.
CREATE TABLE rate_buckets (
    key_id  TEXT PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    full_at BIGINT NOT NULL,
    leased  BIGINT NOT NULL
);
