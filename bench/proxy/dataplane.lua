-- wrk script for bench/proxy/dataplane.sh: one machine-readable result line,
-- and (DP_CLOSE=1) a new TCP connection per request via `Connection: close`,
-- which nginx honours by closing after the response; wrk then reconnects.
if os.getenv("DP_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end

function done(summary, latency, requests)
  local e = summary.errors
  -- Latencies are in microseconds; wrk starts the clock when it writes the
  -- request, so the TCP handshake itself is not in them (it is in requests/s).
  io.write(string.format(
    "DPRESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
