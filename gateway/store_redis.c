/*
 * store_redis.c - the state store in Redis (store.h: gw_store_redis), so
 * that several wardens behind a load balancer enforce the same limits and
 * the same agent sessions.  Used when the rules set `state.redis`.
 *
 * Each operation is one Lua script, run with EVALSHA (EVAL when Redis
 * answers NOSCRIPT, after a restart or SCRIPT FLUSH), so that a check and
 * its update are one atomic step for every replica: two wardens cannot
 * both take a key's last request of the minute.  Scripts take the time
 * from Redis (TIME), so replicas with different clocks share windows.
 * Every script follows the in-process store's semantics (sessions.c,
 * limits_mem.c); tests/unit/test_store.c runs the same cases on both.
 *
 * Why synchronous connections, one per worker thread, with tight
 * timeouts (not hiredis' libevent adapter): the store interface is
 * synchronous and is called in the middle of a transaction (the session
 * check before the request leaves; each tool call's window as the answer
 * is read); making every call a continuation would split the transaction
 * state machine (proxy.c, tools.c) into more states for a call that takes
 * ~0.1 ms on a LAN.  What must be bounded is the stall of a worker's
 * loop when Redis is slow or gone: connect and each command have their
 * own timeout (state.redis.connect_timeout_ms / command_timeout_ms,
 * default 200 ms), and after a failure the worker does not try again for
 * RETRY_MS: requests meanwhile fail at once (closed, unless a limit says
 * fail_open), so a dead Redis costs a worker at most one timeout per
 * RETRY_MS, and service resumes by itself when Redis is back.
 *
 * Keys (one Redis, not a cluster: the session script names keys it
 * derives): PREFIX l:COUNTER (limits), PREFIX s:TENANT/AGENT (a sorted set
 * of the agent's sessions by last use) and ...|s|TOKEN (a session's calls)
 * and ...|s|TOKEN|lost, PREFIX w:AGENT/KEYHEX (a window's buckets),
 * PREFIX r:TENANT (which route made each Responses id) and ...|order
 * (those ids, oldest first).
 */
#include "gateway/gw_int.h"
#include "gateway/store.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MS 500
/* How long a tenant's response routes stay after its last new one: as
 * long as providers keep a stored response (OpenAI: 30 days). */
#define RESP_TTL_MS "2592000000"
#define MAX_ARGS (8 + 7 * GW_MAX_CTRS + GW_SESSION_MAX_CALLS + POL_MAX_TOOLS)

enum script { S_RESERVE, S_SETTLE, S_SESSION, S_WINDOW, S_RESP, S_COUNT };

static const char *const scripts[S_COUNT] = {
/* S_RESERVE: KEYS counters; ARGV[1] lease, then per counter: type, max,
 * amount, window_s, period_end, lease_s.  Returns {refused index or 0,
 * then per counter: used, bucket, retry_ms}. */
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local n, used, bucket, retry, bad = #KEYS, {}, {}, {}, 0\n"
"for i = 1, n do\n"
"  local b = 1 + (i - 1) * 6\n"
"  local ty, max, amt = ARGV[b+1], tonumber(ARGV[b+2]), tonumber(ARGV[b+3])\n"
"  local k, u = KEYS[i], 0\n"
"  retry[i] = 1000\n"
"  if ty == 'w' then\n"
"    local width = math.max(1, math.floor(tonumber(ARGV[b+4]) * 1000 / 60))\n"
"    local cur = math.floor(now / width)\n"
"    local h = redis.call('HGETALL', k)\n"
"    local oldest = nil\n"
"    for j = 1, #h, 2 do\n"
"      local bk = tonumber(h[j])\n"
"      if bk < cur - 60 then redis.call('HDEL', k, h[j]) else\n"
"        local v = tonumber(h[j+1]); u = u + v\n"
"        if v > 0 and (oldest == nil or bk < oldest) then oldest = bk end\n"
"      end\n"
"    end\n"
"    bucket[i] = cur\n"
"    if oldest then retry[i] = (oldest + 61) * width - now end\n"
"  elseif ty == 'p' then\n"
"    u = tonumber(redis.call('GET', k) or '0')\n"
"    bucket[i] = tonumber(ARGV[b+5])\n"
"    retry[i] = bucket[i] * 1000 - now\n"
"  else\n"
"    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)\n"
"    u = redis.call('ZCARD', k)\n"
"    bucket[i] = 0\n"
"    if u >= 4096 then u = max + 1 end\n"
"  end\n"
"  used[i] = u\n"
"  if bad == 0 and u + amt > max then bad = i end\n"
"end\n"
"if bad == 0 then\n"
"  for i = 1, n do\n"
"    local b = 1 + (i - 1) * 6\n"
"    local ty, amt, k = ARGV[b+1], tonumber(ARGV[b+3]), KEYS[i]\n"
"    if ty == 'w' then\n"
"      redis.call('HINCRBY', k, bucket[i], amt)\n"
"      redis.call('PEXPIRE', k, tonumber(ARGV[b+4]) * 2000 + 1000)\n"
"    elseif ty == 'p' then\n"
"      redis.call('INCRBY', k, amt)\n"
"      redis.call('EXPIREAT', k, bucket[i] + 86400)\n"
"    else\n"
"      local ls = tonumber(ARGV[b+6]) * 1000\n"
"      redis.call('ZADD', k, now + ls, ARGV[1])\n"
"      redis.call('PEXPIRE', k, ls + 1000)\n"
"    end\n"
"    used[i] = used[i] + amt\n"
"  end\n"
"end\n"
"local r = {bad}\n"
"for i = 1, n do r[#r+1] = used[i]; r[#r+1] = bucket[i]; r[#r+1] = retry[i] end\n"
"return r\n",
/* S_SETTLE: KEYS counters; ARGV[1] lease, then per counter: type,
 * bucket, delta. */
"for i = 1, #KEYS do\n"
"  local b = 1 + (i - 1) * 3\n"
"  local ty, bk, d, k = ARGV[b+1], ARGV[b+2], tonumber(ARGV[b+3]), KEYS[i]\n"
"  if ty == 'w' then\n"
"    if d ~= 0 and redis.call('HEXISTS', k, bk) == 1 then\n"
"      if redis.call('HINCRBY', k, bk, d) < 0 then redis.call('HSET', k, bk, 0) end\n"
"    end\n"
"  elseif ty == 'p' then\n"
"    if d ~= 0 and redis.call('EXISTS', k) == 1 then\n"
"      if redis.call('INCRBY', k, d) < 0 then redis.call('SET', k, 0, 'KEEPTTL') end\n"
"    end\n"
"  else\n"
"    redis.call('ZREM', k, ARGV[1])\n"
"  end\n"
"end\n"
"return 0\n",
/* S_SESSION: KEYS[1] the agent's sessions; ARGV token, max, ttl_ms,
 * mode ('check' | 'append' | 'read' | 'append_at'), [at,] calls...
 * Returns {rc, recorded, retry_s} ('read': then the record's calls); rc
 * as enum gw_store_rc.  As sessions.c: 'read' makes the session (capped
 * as 'check'), 'append_at' appends only to a record of exactly `at`
 * calls (CONTRADICTS otherwise, or when the session is gone). */
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local z, tok = KEYS[1], ARGV[1]\n"
"local max, ttl, mode = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]\n"
"local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - ttl)\n"
"for _, s in ipairs(old) do\n"
"  redis.call('DEL', z .. '|s|' .. s, z .. '|s|' .. s .. '|lost')\n"
"end\n"
"if #old > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now - ttl) end\n"
"local L = z .. '|s|' .. tok\n"
"local X = L .. '|lost'\n"
"if not redis.call('ZSCORE', z, tok) then\n"
"  if mode == 'append_at' then return {1, 0, 0} end\n"
"  if (mode == 'check' or mode == 'read') and\n"
"      redis.call('ZCARD', z) >= max then\n"
"    local o = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')\n"
"    return {3, 0, math.ceil((tonumber(o[2]) + ttl - now) / 1000)}\n"
"  end\n"
"  redis.call('DEL', L, X)\n"
"end\n"
"redis.call('ZADD', z, now, tok)\n"
"redis.call('PEXPIRE', z, ttl + 1000)\n"
"local nrec = redis.call('LLEN', L)\n"
"local n = #ARGV - 4\n"
"local lost = redis.call('GET', X)\n"
"if lost then redis.call('PEXPIRE', X, ttl) end\n"
"if mode == 'append_at' then\n"
"  if lost then return {tonumber(lost), nrec, 0} end\n"
"  if nrec ~= tonumber(ARGV[5]) then return {1, nrec, 0} end\n"
"  local m = #ARGV - 5\n"
"  if nrec + m > 256 then\n"
"    redis.call('SET', X, 2, 'PX', ttl)\n"
"    return {2, nrec, 0}\n"
"  end\n"
"  for i = 1, m do redis.call('RPUSH', L, ARGV[5 + i]) end\n"
"  if m > 0 then redis.call('PEXPIRE', L, ttl) end\n"
"  return {0, nrec, 0}\n"
"end\n"
"if mode == 'read' then\n"
"  if lost then return {tonumber(lost), nrec, 0} end\n"
"  local out = {0, nrec, 0}\n"
"  local rec = redis.call('LRANGE', L, 0, -1)\n"
"  for i = 1, #rec do out[3 + i] = rec[i] end\n"
"  return out\n"
"end\n"
"if mode == 'append' then\n"
"  if nrec + n > 256 then\n"
"    redis.call('SET', X, 2, 'PX', ttl)\n"
"    return {2, nrec, 0}\n"
"  end\n"
"  for i = 1, n do redis.call('RPUSH', L, ARGV[4 + i]) end\n"
"  if n > 0 then redis.call('PEXPIRE', L, ttl) end\n"
"  return {0, nrec, 0}\n"
"end\n"
"if lost then return {tonumber(lost), nrec, 0} end\n"
"local rec = redis.call('LRANGE', L, 0, -1)\n"
"for i = 1, #rec do\n"
"  if i > n or rec[i] ~= ARGV[4 + i] then return {1, nrec, 0} end\n"
"end\n"
"if n > 256 then return {2, nrec, 0} end\n"
"for i = #rec + 1, n do redis.call('RPUSH', L, ARGV[4 + i]) end\n"
"if n > 0 then redis.call('PEXPIRE', L, ttl) end\n"
"return {0, nrec, 0}\n",
/* S_WINDOW: KEYS[1] the window; ARGV window_s, mode ('read' | 'take'),
 * then names... (read) or tool, max_total, max_tool (take). */
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local k, ws = KEYS[1], tonumber(ARGV[1])\n"
"local width = math.max(1, math.floor(ws * 1000 / 60))\n"
"local cur = math.floor(now / width)\n"
"local h = redis.call('HGETALL', k)\n"
"local total, per = 0, {}\n"
"for j = 1, #h, 2 do\n"
"  local f = h[j]\n"
"  local sep = string.find(f, '|', 1, true)\n"
"  local bk = tonumber(sep and string.sub(f, 1, sep - 1) or f)\n"
"  if bk < cur - 60 then redis.call('HDEL', k, f) else\n"
"    local v = tonumber(h[j+1])\n"
"    if sep then\n"
"      local name = string.sub(f, sep + 1)\n"
"      per[name] = (per[name] or 0) + v\n"
"    else total = total + v end\n"
"  end\n"
"end\n"
"if ARGV[2] == 'read' then\n"
"  local r = {0, total}\n"
"  for i = 3, #ARGV do r[#r+1] = per[ARGV[i]] or 0 end\n"
"  return r\n"
"end\n"
"local tool, mt, mo = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])\n"
"if (mt >= 0 and total >= mt) or (mo >= 0 and (per[tool] or 0) >= mo) then\n"
"  return {4}\n"
"end\n"
"redis.call('HINCRBY', k, cur, 1)\n"
"redis.call('HINCRBY', k, cur .. '|' .. tool, 1)\n"
"redis.call('PEXPIRE', k, ws * 2000 + 1000)\n"
"return {0}\n",
/* S_RESP: KEYS[1] the tenant's routes (id -> route), KEYS[2] its ids,
 * oldest first; ARGV mode ('put' | 'get'), id, then route, cap, ttl_ms
 * (put).  As resp_routes.c: each tenant keeps its last cap ids.  Returns
 * {0} (put), {0, route} or {6} (get: unknown, GW_STORE_UNKNOWN). */
"local h, l = KEYS[1], KEYS[2]\n"
"if ARGV[1] == 'get' then\n"
"  local r = redis.call('HGET', h, ARGV[2])\n"
"  if r then return {0, r} end\n"
"  return {6}\n"
"end\n"
"if redis.call('HSET', h, ARGV[2], ARGV[3]) == 1 then\n"
"  redis.call('RPUSH', l, ARGV[2])\n"
"end\n"
"while redis.call('LLEN', l) > tonumber(ARGV[4]) do\n"
"  redis.call('HDEL', h, redis.call('LPOP', l))\n"
"end\n"
"redis.call('PEXPIRE', h, ARGV[5])\n"
"redis.call('PEXPIRE', l, ARGV[5])\n"
"return {0}\n",
};

/* Set once by gw_store_redis_init, before the workers start. */
static struct {
	char host[256];
	int port, db;
	int connect_ms, command_ms;
	char prefix[80];
	char sha[S_COUNT][41];
	bool ready;
} cfg;

/* One connection per worker thread. */
struct rconn {
	redisContext *c;
	uint64_t down_until_us;		/* failed: do not try before */
};
static __thread struct rconn conn;

static void
conn_drop(struct rconn *r, const char *why)
{
	if (r->c != NULL) {
		wd_warn("state store: redis %s:%d: %s; requests that need it "
		    "fail closed (fail_open limits excepted) and it is tried "
		    "again in %d ms", cfg.host, cfg.port, why, RETRY_MS);
		redisFree(r->c);
		r->c = NULL;
	}
	r->down_until_us = wd_mono_us() + RETRY_MS * 1000ull;
}

static redisContext *
conn_get(void)
{
	struct rconn *r = &conn;
	struct timeval tv;
	redisReply *rep;

	if (!cfg.ready)
		return NULL;
	if (r->c != NULL)
		return r->c;
	if (wd_mono_us() < r->down_until_us)
		return NULL;
	tv.tv_sec = cfg.connect_ms / 1000;
	tv.tv_usec = (cfg.connect_ms % 1000) * 1000;
	r->c = redisConnectWithTimeout(cfg.host, cfg.port, tv);
	if (r->c == NULL || r->c->err) {
		if (r->c != NULL) {
			redisFree(r->c);
			r->c = NULL;
		}
		r->down_until_us = wd_mono_us() + RETRY_MS * 1000ull;
		return NULL;
	}
	tv.tv_sec = cfg.command_ms / 1000;
	tv.tv_usec = (cfg.command_ms % 1000) * 1000;
	if (redisSetTimeout(r->c, tv) != REDIS_OK) {
		conn_drop(r, "cannot set its timeout");
		return NULL;
	}
	if (cfg.db != 0) {
		rep = redisCommand(r->c, "SELECT %d", cfg.db);
		if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
			if (rep != NULL)
				freeReplyObject(rep);
			conn_drop(r, "SELECT failed");
			return NULL;
		}
		freeReplyObject(rep);
	}
	return r->c;
}

/*
 * Run script s with keys and args: EVALSHA, and EVAL when Redis does not
 * know the script.  Returns the reply (an array of integers, checked
 * here), or NULL when Redis cannot answer (the connection is dropped).
 */
static redisReply *
run(enum script s, const char **keys, size_t nkeys, const char **args,
    const size_t *arglens, size_t nargs)
{
	const char *argv[MAX_ARGS];
	size_t lens[MAX_ARGS], argc = 0;
	char nk[16];
	redisContext *c = conn_get();
	redisReply *rep = NULL;

	if (c == NULL || 3 + nkeys + nargs > MAX_ARGS)
		return NULL;
	snprintf(nk, sizeof(nk), "%zu", nkeys);
	argv[argc] = "EVALSHA";
	lens[argc++] = 7;
	argv[argc] = cfg.sha[s];
	lens[argc++] = 40;
	argv[argc] = nk;
	lens[argc++] = strlen(nk);
	for (size_t i = 0; i < nkeys; i++) {
		argv[argc] = keys[i];
		lens[argc++] = strlen(keys[i]);
	}
	for (size_t i = 0; i < nargs; i++) {
		argv[argc] = args[i];
		lens[argc++] = arglens ? arglens[i] : strlen(args[i]);
	}
	for (int attempt = 0, fresh = 0; attempt < 2; attempt++) {
		rep = redisCommandArgv(c, (int)argc, argv, lens);
		if (rep == NULL) {
			/* A connection Redis closed while it sat idle (a restart):
			 * nothing of this command ran; one fresh connection may
			 * try it again.  Never after a timeout: it may have run. */
			bool closed = c->err == REDIS_ERR_EOF ||
			    (c->err == REDIS_ERR_IO && (errno == EPIPE ||
			    errno == ECONNRESET));

			conn_drop(&conn, c->errstr[0] ? c->errstr : "no answer");
			if (!closed || fresh++ > 0)
				return NULL;
			conn.down_until_us = 0;
			if ((c = conn_get()) == NULL)
				return NULL;
			attempt--;
			continue;
		}
		if (rep->type == REDIS_REPLY_ERROR && attempt == 0 &&
		    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
			freeReplyObject(rep);
			argv[0] = "EVAL";
			lens[0] = 4;
			argv[1] = scripts[s];
			lens[1] = strlen(scripts[s]);
			continue;
		}
		break;
	}
	if (rep->type != REDIS_REPLY_ARRAY && rep->type != REDIS_REPLY_INTEGER) {
		/* A script error, or Redis refusing writes (a replica, out of
		 * memory): the numbers cannot be trusted. */
		wd_warn("state store: redis answered %s",
		    rep->type == REDIS_REPLY_ERROR ? rep->str : "an unexpected type");
		freeReplyObject(rep);
		return NULL;
	}
	/* Numbers only; the session script's 'read' then lists the calls,
	 * the response script's 'get' names the route. */
	for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements;
	    i++)
		if (rep->element[i]->type != REDIS_REPLY_INTEGER &&
		    !(((s == S_SESSION && i >= 3) || (s == S_RESP && i == 1)) &&
		    rep->element[i]->type == REDIS_REPLY_STRING)) {
			freeReplyObject(rep);
			return NULL;
		}
	return rep;
}

static long long
rint_at(const redisReply *r, size_t i)
{
	return r->type == REDIS_REPLY_ARRAY && i < r->elements ?
	    r->element[i]->integer : 0;
}

/* ---- limits ---- */

static enum gw_store_rc
r_limit_reserve(struct gw_ctr *c, size_t n, const char *lease, size_t *which)
{
	char keys[GW_MAX_CTRS][GW_CTR_KEY_MAX + 96];
	char nums[GW_MAX_CTRS][5][24];
	const char *kp[GW_MAX_CTRS], *args[1 + 6 * GW_MAX_CTRS];
	char ty[GW_MAX_CTRS][2];
	size_t na = 0;
	redisReply *rep;
	long long bad;

	*which = 0;
	if (n > GW_MAX_CTRS)
		return GW_STORE_NOMEM;
	args[na++] = lease;
	for (size_t i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%sl:%s", cfg.prefix, c[i].key);
		kp[i] = keys[i];
		ty[i][0] = (char)c[i].type;
		ty[i][1] = '\0';
		snprintf(nums[i][0], 24, "%lld", c[i].max);
		snprintf(nums[i][1], 24, "%lld", c[i].amount);
		snprintf(nums[i][2], 24, "%d", c[i].window_s);
		snprintf(nums[i][3], 24, "%lld", c[i].period_end);
		snprintf(nums[i][4], 24, "%d", c[i].lease_s);
		args[na++] = ty[i];
		for (int k = 0; k < 5; k++)
			args[na++] = nums[i][k];
	}
	if ((rep = run(S_RESERVE, kp, n, args, NULL, na)) == NULL)
		return GW_STORE_UNAVAILABLE;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 + 3 * n) {
		freeReplyObject(rep);
		return GW_STORE_UNAVAILABLE;
	}
	bad = rint_at(rep, 0);
	for (size_t i = 0; i < n; i++) {
		long long ms = rint_at(rep, 3 + 3 * i);

		c[i].used = rint_at(rep, 1 + 3 * i);
		c[i].bucket = rint_at(rep, 2 + 3 * i);
		c[i].retry_s = ms < 1000 ? 1 : (int)((ms + 999) / 1000);
	}
	freeReplyObject(rep);
	if (bad > 0 && (size_t)bad <= n) {
		*which = (size_t)bad - 1;
		return GW_STORE_LIMIT;
	}
	for (size_t i = 0; i < n; i++)
		c[i].retry_s = 0;
	return GW_STORE_OK;
}

static enum gw_store_rc
r_limit_settle(const struct gw_ctr *c, size_t n, const char *lease,
    const long long *delta)
{
	char keys[GW_MAX_CTRS][GW_CTR_KEY_MAX + 96];
	char nums[GW_MAX_CTRS][2][24];
	const char *kp[GW_MAX_CTRS], *args[1 + 3 * GW_MAX_CTRS];
	char ty[GW_MAX_CTRS][2];
	size_t na = 0;
	redisReply *rep;

	if (n > GW_MAX_CTRS)
		return GW_STORE_NOMEM;
	args[na++] = lease;
	for (size_t i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "%sl:%s", cfg.prefix, c[i].key);
		kp[i] = keys[i];
		ty[i][0] = (char)c[i].type;
		ty[i][1] = '\0';
		snprintf(nums[i][0], 24, "%lld", c[i].bucket);
		snprintf(nums[i][1], 24, "%lld", delta[i]);
		args[na++] = ty[i];
		args[na++] = nums[i][0];
		args[na++] = nums[i][1];
	}
	if ((rep = run(S_SETTLE, kp, n, args, NULL, na)) == NULL)
		return GW_STORE_UNAVAILABLE;
	freeReplyObject(rep);
	return GW_STORE_OK;
}

/* ---- sessions ---- */

/* The session script's rc as ours (anything else: the store failed). */
static enum gw_store_rc
session_rc(long long rc)
{
	switch (rc) {
	case GW_STORE_OK:
	case GW_STORE_CONTRADICTS:
	case GW_STORE_TOO_LONG:
	case GW_STORE_FULL:
	case GW_STORE_NOMEM:
		return (enum gw_store_rc)rc;
	default:
		return GW_STORE_UNAVAILABLE;
	}
}

/* Run the session script; at: the record's expected length
 * ('append_at'), else NULL.  *rep_out, if given, gets the reply (the
 * caller frees it), else it is freed here. */
static enum gw_store_rc
session_run(const struct gw_sess_ref *r, const char *mode, const char *at,
    const char *const *calls, size_t n, size_t *recorded, int *retry_s,
    redisReply **rep_out)
{
	char key[320], max[24], ttl[24];
	const char *kp[1] = { key }, *args[5 + GW_SESSION_MAX_CALLS + 1];
	size_t na = 0;
	redisReply *rep;
	long long rc;

	*recorded = 0;
	*retry_s = 0;
	if (rep_out != NULL)
		*rep_out = NULL;
	if (n > GW_SESSION_MAX_CALLS)
		n = GW_SESSION_MAX_CALLS + 1;	/* enough to say TOO_LONG */
	if (n > GW_SESSION_MAX_CALLS && strcmp(mode, "check") != 0)
		return GW_STORE_TOO_LONG;
	snprintf(key, sizeof(key), "%ss:%s/%s", cfg.prefix, r->tenant,
	    r->agent);
	snprintf(max, sizeof(max), "%zu", r->max);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)r->ttl_s * 1000);
	args[na++] = r->session;
	args[na++] = max;
	args[na++] = ttl;
	args[na++] = mode;
	if (at != NULL)
		args[na++] = at;
	for (size_t i = 0; i < n && i < GW_SESSION_MAX_CALLS + 1; i++)
		args[na++] = calls[i];
	if ((rep = run(S_SESSION, kp, 1, args, NULL, na)) == NULL)
		return GW_STORE_UNAVAILABLE;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3 ||
	    (rep_out == NULL && rep->elements != 3)) {
		freeReplyObject(rep);
		return GW_STORE_UNAVAILABLE;
	}
	rc = rint_at(rep, 0);
	*recorded = (size_t)rint_at(rep, 1);
	*retry_s = (int)rint_at(rep, 2);
	if (rep_out != NULL)
		*rep_out = rep;
	else
		freeReplyObject(rep);
	return session_rc(rc);
}

static enum gw_store_rc
session_op(const struct gw_sess_ref *r, const char *mode,
    const char *const *calls, size_t n, size_t *recorded, int *retry_s)
{
	return session_run(r, mode, NULL, calls, n, recorded, retry_s, NULL);
}

static enum gw_store_rc
r_session_check(const struct gw_sess_ref *r, const char *const *calls,
    size_t n, size_t *recorded, int *retry_s)
{
	return session_op(r, "check", calls, n, recorded, retry_s);
}

static enum gw_store_rc
r_session_append(const struct gw_sess_ref *r, const char *const *calls,
    size_t n)
{
	size_t recorded;
	int retry_s;

	return session_op(r, "append", calls, n, &recorded, &retry_s);
}

static enum gw_store_rc
r_session_read(const struct gw_sess_ref *r, char ***names, size_t *n,
    int *retry_s)
{
	redisReply *rep;
	size_t recorded, count, bytes = 0;
	enum gw_store_rc rc;
	char **v, *p;

	*names = NULL;
	*n = 0;
	rc = session_run(r, "read", NULL, NULL, 0, &recorded, retry_s, &rep);
	if (rc != GW_STORE_OK || rep == NULL) {
		if (rep != NULL)
			freeReplyObject(rep);
		return rc;
	}
	count = rep->elements - 3;
	for (size_t i = 0; i < count; i++) {
		redisReply *e = rep->element[3 + i];

		if (e->type != REDIS_REPLY_STRING || memchr(e->str, '\0',
		    e->len) != NULL) {
			freeReplyObject(rep);
			return GW_STORE_UNAVAILABLE;
		}
		bytes += e->len + 1;
	}
	/* Pointers, then the names, in one block (as sessions.c). */
	if ((v = malloc((count + 1) * sizeof(*v) + bytes + 1)) == NULL) {
		freeReplyObject(rep);
		return GW_STORE_NOMEM;
	}
	p = (char *)(v + count + 1);
	for (size_t i = 0; i < count; i++) {
		redisReply *e = rep->element[3 + i];

		memcpy(p, e->str, e->len);
		p[e->len] = '\0';
		v[i] = p;
		p += e->len + 1;
	}
	v[count] = NULL;
	freeReplyObject(rep);
	*names = v;
	*n = count;
	return GW_STORE_OK;
}

static enum gw_store_rc
r_session_append_at(const struct gw_sess_ref *r, size_t at,
    const char *const *calls, size_t n)
{
	char atbuf[24];
	size_t recorded;
	int retry_s;

	snprintf(atbuf, sizeof(atbuf), "%zu", at);
	return session_run(r, "append_at", atbuf, calls, n, &recorded, &retry_s,
	    NULL);
}

/* ---- windows ---- */

static void
win_key(const struct gw_win_ref *r, char *key, size_t len)
{
	char hex[65];

	wd_hex(r->key, 32, hex);
	snprintf(key, len, "%sw:%s/%s", cfg.prefix, r->agent, hex);
}

static enum gw_store_rc
r_window_read(const struct gw_win_ref *r, const char *const *names,
    size_t n, unsigned *total, unsigned *counts)
{
	char key[256], ws[24];
	const char *kp[1] = { key }, *args[2 + POL_MAX_TOOLS];
	size_t na = 0;
	redisReply *rep;

	if (n > POL_MAX_TOOLS)
		return GW_STORE_NOMEM;
	win_key(r, key, sizeof(key));
	snprintf(ws, sizeof(ws), "%d", r->window_s);
	args[na++] = ws;
	args[na++] = "read";
	for (size_t i = 0; i < n; i++)
		args[na++] = names[i];
	if ((rep = run(S_WINDOW, kp, 1, args, NULL, na)) == NULL)
		return GW_STORE_UNAVAILABLE;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 + n) {
		freeReplyObject(rep);
		return GW_STORE_UNAVAILABLE;
	}
	*total = (unsigned)rint_at(rep, 1);
	for (size_t i = 0; i < n; i++)
		counts[i] = (unsigned)rint_at(rep, 2 + i);
	freeReplyObject(rep);
	return GW_STORE_OK;
}

static enum gw_store_rc
r_window_take(const struct gw_win_ref *r, const char *tool, int max_total,
    int max_tool)
{
	char key[256], ws[24], mt[24], mo[24];
	const char *kp[1] = { key }, *args[5];
	redisReply *rep;
	long long rc;

	win_key(r, key, sizeof(key));
	snprintf(ws, sizeof(ws), "%d", r->window_s);
	snprintf(mt, sizeof(mt), "%d", max_total);
	snprintf(mo, sizeof(mo), "%d", max_tool);
	args[0] = ws;
	args[1] = "take";
	args[2] = tool;
	args[3] = mt;
	args[4] = mo;
	if ((rep = run(S_WINDOW, kp, 1, args, NULL, 5)) == NULL)
		return GW_STORE_UNAVAILABLE;
	rc = rint_at(rep, 0);
	freeReplyObject(rep);
	return rc == 0 ? GW_STORE_OK : rc == GW_STORE_LIMIT ? GW_STORE_LIMIT :
	    GW_STORE_UNAVAILABLE;
}

/* ---- previous_response_id routes ---- */

static void
resp_keys(const char *tenant, char h[GW_CTR_KEY_MAX + 96],
    char l[GW_CTR_KEY_MAX + 96])
{
	snprintf(h, GW_CTR_KEY_MAX + 96, "%sr:%s", cfg.prefix, tenant);
	snprintf(l, GW_CTR_KEY_MAX + 96, "%sr:%s|order", cfg.prefix, tenant);
}

static enum gw_store_rc
r_response_put(const char *tenant, const char *id, const char *route)
{
	char h[GW_CTR_KEY_MAX + 96], l[GW_CTR_KEY_MAX + 96], cap[16];
	const char *kp[2] = { h, l };
	const char *args[5] = { "put", id, route, cap, RESP_TTL_MS };
	redisReply *rep;

	if (strlen(id) > GW_RESP_ID_MAX || strlen(route) > GW_RESP_ROUTE_MAX)
		return GW_STORE_TOO_LONG;
	resp_keys(tenant, h, l);
	snprintf(cap, sizeof(cap), "%d", GW_RESP_PER_TENANT);
	if ((rep = run(S_RESP, kp, 2, args, NULL, 5)) == NULL)
		return GW_STORE_UNAVAILABLE;
	freeReplyObject(rep);
	return GW_STORE_OK;
}

static enum gw_store_rc
r_response_route(const char *tenant, const char *id, char *route,
    size_t len)
{
	char h[GW_CTR_KEY_MAX + 96], l[GW_CTR_KEY_MAX + 96];
	const char *kp[2] = { h, l }, *args[2] = { "get", id };
	enum gw_store_rc rc = GW_STORE_UNAVAILABLE;
	redisReply *rep;

	if (strlen(id) > GW_RESP_ID_MAX)
		return GW_STORE_UNKNOWN;
	resp_keys(tenant, h, l);
	if ((rep = run(S_RESP, kp, 2, args, NULL, 2)) == NULL)
		return GW_STORE_UNAVAILABLE;
	if (rint_at(rep, 0) == GW_STORE_UNKNOWN)
		rc = GW_STORE_UNKNOWN;
	else if (rint_at(rep, 0) == 0 && rep->elements == 2 &&
	    rep->element[1]->len < len) {
		memcpy(route, rep->element[1]->str, rep->element[1]->len);
		route[rep->element[1]->len] = '\0';
		rc = GW_STORE_OK;
	}
	freeReplyObject(rep);
	return rc;
}

const struct gw_store_ops gw_store_redis = {
	.name = "redis",
	.session_check = r_session_check,
	.session_append = r_session_append,
	.session_read = r_session_read,
	.session_append_at = r_session_append_at,
	.window_read = r_window_read,
	.window_take = r_window_take,
	.limit_reserve = r_limit_reserve,
	.limit_settle = r_limit_settle,
	.response_put = r_response_put,
	.response_route = r_response_route,
};

enum wd_err
gw_store_redis_init(const struct pol_state *st, char *err, size_t errlen)
{
	const char *hp, *colon, *slash;
	char *end;
	long port, db = 0;
	size_t hlen;
	unsigned char md[SHA_DIGEST_LENGTH];
	redisContext *c;

	if (st->redis_url == NULL || strncmp(st->redis_url, "redis://", 8)) {
		snprintf(err, errlen, "state.redis.url must be redis://HOST:PORT");
		return WD_ECONFIG;
	}
	hp = st->redis_url + 8;
	colon = strrchr(hp, ':');
	slash = strchr(hp, '/');
	if (colon == NULL || (slash != NULL && colon > slash)) {
		snprintf(err, errlen, "state.redis.url: no port");
		return WD_ECONFIG;
	}
	hlen = (size_t)(colon - hp);
	if (hlen == 0 || hlen >= sizeof(cfg.host)) {
		snprintf(err, errlen, "state.redis.url: bad host");
		return WD_ECONFIG;
	}
	port = strtol(colon + 1, &end, 10);
	if (port < 1 || port > 65535 || (*end != '\0' && *end != '/')) {
		snprintf(err, errlen, "state.redis.url: bad port");
		return WD_ECONFIG;
	}
	if (*end == '/' && end[1] != '\0') {
		db = strtol(end + 1, &end, 10);
		if (db < 0 || db > 1000 || *end != '\0') {
			snprintf(err, errlen, "state.redis.url: bad database number");
			return WD_ECONFIG;
		}
	}
	memcpy(cfg.host, hp, hlen);
	cfg.host[hlen] = '\0';
	/* [::1] */
	if (cfg.host[0] == '[' && hlen > 2 && cfg.host[hlen - 1] == ']') {
		memmove(cfg.host, cfg.host + 1, hlen - 2);
		cfg.host[hlen - 2] = '\0';
	}
	cfg.port = (int)port;
	cfg.db = (int)db;
	cfg.connect_ms = st->connect_timeout_ms > 0 ? st->connect_timeout_ms : 200;
	cfg.command_ms = st->command_timeout_ms > 0 ? st->command_timeout_ms : 200;
	snprintf(cfg.prefix, sizeof(cfg.prefix), "%s",
	    st->key_prefix ? st->key_prefix : "warden:");
	for (int s = 0; s < S_COUNT; s++) {
		SHA1((const unsigned char *)scripts[s], strlen(scripts[s]), md);
		wd_hex(md, SHA_DIGEST_LENGTH, cfg.sha[s]);
	}
	cfg.ready = true;
	/* Try now, to say so at start; the workers connect on their own. */
	c = redisConnectWithTimeout(cfg.host, cfg.port, (struct timeval){
	    cfg.connect_ms / 1000, (cfg.connect_ms % 1000) * 1000 });
	if (c == NULL || c->err)
		wd_warn("state store: redis %s:%d cannot be reached now (%s); "
		    "limits and sessions fail closed until it can", cfg.host,
		    cfg.port, c ? c->errstr : "no memory");
	else
		wd_info("state store: redis %s:%d (limits, agent sessions and "
		    "Responses routes shared with every warden that uses it)",
		    cfg.host, cfg.port);
	if (c != NULL)
		redisFree(c);
	return WD_OK;
}
