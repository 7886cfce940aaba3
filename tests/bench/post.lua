-- post.lua - wrk script for tests/bench/bench.sh: POST the same chat
-- completion to every target and count the answers that are not a 2xx
-- chat.completion, so a broken target cannot produce a nice table.
-- Environment: BENCH_BODY (file with the JSON body), BENCH_KEY (bearer key),
-- BENCH_HEADERS (optional: more headers, "Name: value" separated by "|",
-- e.g. X-Warden-Agent for the agent row, x-portkey-* for Portkey's).

local f = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY unset"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_KEY"), "BENCH_KEY unset")
for h in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
	local name, value = string.match(h, "^%s*([^:]+):%s*(.-)%s*$")
	assert(name, "BENCH_HEADERS: '" .. h .. "' is not 'Name: value'")
	wrk.headers[name] = value
end

local threads = {}

function setup(thread)
	table.insert(threads, thread)
end

function init(args)
	non2xx = 0
	badbody = 0
	first_bad = ""
end

function response(status, headers, body)
	if status < 200 or status > 299 then
		non2xx = non2xx + 1
		if first_bad == "" then
			first_bad = status .. " " .. string.sub(body or "", 1, 200)
		end
	elseif not string.find(body or "", '"chat.completion"', 1, true) then
		badbody = badbody + 1
		if first_bad == "" then
			first_bad = status .. " " .. string.sub(body or "", 1, 200)
		end
	end
end

function done(summary, latency, requests)
	local n, b, first = 0, 0, ""
	for _, t in ipairs(threads) do
		n = n + t:get("non2xx")
		b = b + t:get("badbody")
		if first == "" then
			first = t:get("first_bad")
		end
	end
	local e = summary.errors
	io.write(string.format("bench-result: requests=%d non2xx=%d badbody=%d " ..
	    "connect=%d read=%d write=%d timeout=%d\n", summary.requests, n, b,
	    e.connect, e.read, e.write, e.timeout))
	if first ~= "" then
		io.write("bench-first-bad: " .. string.gsub(first, "[\r\n]", " ") .. "\n")
	end
end
