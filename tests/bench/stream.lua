-- stream.lua - wrk script for the open-streams phase of bench.sh: every
-- connection asks for a slow streamed answer (60 events, 100 ms apart), so
-- that about as many streams are open at once as wrk has connections.
wrk.method = "POST"
wrk.body = '{"model":"gpt-4o","stream":true,"messages":[{"role":"user",' ..
    '"content":"stream slowly [[mock chunks=60 chunk_delay_ms=100]]"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_KEY"), "BENCH_KEY unset")
