-- wrk script: POST a 4 KiB body to /upload; counts only 202 answers as accepted.
wrk.method = "POST"
wrk.path = "/upload"
wrk.body = string.rep("x", 4096)
wrk.headers["X-Container-Name"] = os.getenv("FERRY_BENCH_CONTAINER") or "bench"

-- Every upload has its own destination (one directory), as real files do: uploads to one
-- path are delivered one after the other, in order, and would measure that instead.
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

function init(args)
  accepted = 0
  refused = 0
  sent = 0
end

-- FERRY_BENCH_ONE_PATH sends every upload to that one destination instead: the backlog
-- of one path (delivered one after the other) is what that figure measures.
local one_path = os.getenv("FERRY_BENCH_ONE_PATH")
-- FERRY_BENCH_PREFIX: the directory of the destinations (distinct per run, so that
-- consecutive runs against one Ferry never repeat a path).
local prefix = os.getenv("FERRY_BENCH_PREFIX") or "/tmp/ferry-bench"
-- FERRY_BENCH_LIMIT: wrk ends (without its summary) as soon as one thread has had this
-- many uploads answered 202, instead of after a duration: the server's own counters say
-- exactly how many it accepted (requests in flight included).
local limit = tonumber(os.getenv("FERRY_BENCH_LIMIT") or "0")

function request()
  sent = sent + 1
  wrk.headers["X-File-Path"] = one_path or string.format("%s/%d-%d.bin", prefix, thread_id, sent)
  return wrk.format()
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
  else
    refused = refused + 1
  end
  if limit > 0 and accepted >= limit then
    -- wrk.thread:stop() would leave the main thread sleeping out the duration.
    os.exit(0)
  end
end

function done(summary, latency, requests)
  local total_accepted, total_refused = 0, 0
  for _, thread in ipairs(threads) do
    total_accepted = total_accepted + thread:get("accepted")
    total_refused = total_refused + thread:get("refused")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("FERRY accepted=%d refused=%d errors=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f\n",
    total_accepted, total_refused,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
