-- The load of benchmarks/http.py, for wrk:
--   BENCH_TOKEN=JWT wrk -t1 -c64 -d8s --timeout 10s -s benchmarks/wrk/orders.lua URL -- MODE [IDS_FILE]
-- MODE read: GET /v1/orders/{id}, cycling through the ids in IDS_FILE (one a line);
--      list: GET /v1/orders?page=1&per_page=20;  create: POST /v1/orders with two lines.
-- Prints one JSON line: requests, duration, errors and latency percentiles (microseconds).
local ORDER = [[{"customer_id": "0190f6c4-58a3-7b1c-9d3e-4a5b6c7d8e9f", "currency": "EUR",
 "note": "ring twice", "lines": [{"sku": "SKU-1001", "quantity": 2, "unit_price": "19.99"},
 {"sku": "SKU-2002", "quantity": 1, "unit_price": "5.00"}]}]]

local prepared = {}
local index = 0

function init(args)
  local mode = args[1]
  -- BENCH_TOKEN: a bearer token sent with every request (both servers get the same bytes).
  local token = os.getenv("BENCH_TOKEN")
  local headers = {}
  if token then headers["Authorization"] = "Bearer " .. token end
  if mode == "read" then
    for id in io.lines(args[2]) do
      prepared[#prepared + 1] = wrk.format("GET", "/v1/orders/" .. id, headers)
    end
  elseif mode == "list" then
    prepared[1] = wrk.format("GET", "/v1/orders?page=1&per_page=20", headers)
  elseif mode == "create" then
    headers["Content-Type"] = "application/json"
    prepared[1] = wrk.format("POST", "/v1/orders", headers, ORDER)
  else
    error("MODE is read, list or create")
  end
end

function request()
  index = index % #prepared + 1
  return prepared[index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "http_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
