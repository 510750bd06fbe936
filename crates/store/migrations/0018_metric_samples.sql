-- Metrics over time: one row per server and sampling period, written by `serve`'s sampler from
-- what the gateway and the runtime count in memory (differences since the previous sample),
-- read as charts, pruned by age. A removed server takes its rows: the audit log is the record
-- that outlives servers, these are only for charts.
CREATE TABLE metric_samples (
    server_id          TEXT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    -- Start of the period, in milliseconds since the Unix epoch (a multiple of its length).
    at                 INTEGER NOT NULL,
    -- Length of the period in milliseconds (60000 by default).
    period_ms          INTEGER NOT NULL,
    requests           INTEGER NOT NULL,
    errors             INTEGER NOT NULL,
    -- Latency percentiles of the period's requests, in microseconds; 0 without requests.
    latency_p50_us     INTEGER NOT NULL,
    latency_p99_us     INTEGER NOT NULL,
    cold_starts        INTEGER NOT NULL,
    cold_start_total_ms INTEGER NOT NULL,
    cold_start_max_ms  INTEGER NOT NULL,
    -- Highest memory the server's instances used at once during the period, in bytes.
    memory_peak_bytes  INTEGER NOT NULL,
    PRIMARY KEY (server_id, at)
);
-- Pruning by age.
CREATE INDEX metric_samples_by_time ON metric_samples (at);
