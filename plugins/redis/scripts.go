package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Every write but most batches is one script, run with
// EVALSHA (and EVAL when Redis does not have it cached, which go-redis's
// Script does), so Redis applies it atomically: conditions, the change,
// the revision stamps and the events in the stream happen together or
// not at all. A batch without expiries is planned in Go and written in
// one MULTI/EXEC under WATCH (batchtx.go), with scriptBatch as its
// fallback. Count, Stats and history reads are scripts too; Get, GetMany
// and most List pages are read without one (read.go, list.go).
//
// Every script receives the store's nine keys as KEYS, in the order of
// keyNames, all under one hash tag: a script is valid on one Redis
// Cluster slot and touches no key it does not declare.
//
// Layout (P is the key prefix):
//
//	P rev      string  the store revision (the last change's)
//	P val      hash    key -> value
//	P meta     hash    key -> version, expires_at_ms, value length: 20
//	                   bytes, struct.pack('>I8I8I4'), big-endian
//	P idx      zset    every stored key, score 0: ordered by bytes (BYLEX)
//	P exp      zset    key -> expires_at_ms, for keys with a TTL
//	P events   stream  the history: one entry per chunk of a commit's
//	                   changes, ID "<last revision>-0" (luaEvent; a
//	                   watched batch packs its chunks, chunk.go)
//	P bytes    string  the sum of key and value lengths of stored keys
//	P epoch    string  "<random>:<base>": a new random one means the
//	                   store's data was lost; base is the first revision
//	                   its history can hold
//	P scratch  hash    Increment's int64 arithmetic (empty between calls)
//
// Stored keys include expired ones that cleanup has not removed yet:
// every read compares expires_at with the server's clock (TIME) and skips
// them, counts and stats subtract them.
//
// Binary metadata and chunked events are for speed: in Redis's Lua,
// string.format and string.match cost four to five times what
// struct.pack and struct.unpack do, and an XADD per change cost 4-5 us,
// 5 ms of a 1000-op batch; one XADD per chunk of up to 1000 changes costs
// one call (docs/RATIONALE.md, "Redis backend").
//
// Write scripts carry no flags in their shebang, so Redis refuses them
// whole, before they run, when it is out of memory (OOM): none is ever
// cut off half way. Read scripts are flagged no-writes. Every script but
// init starts by checking the epoch key; when it is missing (a Redis that
// lost its data) it returns {-1} and the caller runs init and retries.
//
// Replies are arrays whose first element is a status: 0 ok, 1 conflict
// (the current version, and in a batch the op index), 2 not found, 3 not
// a counter (the value's first bytes), 4 increment overflow (the value),
// -1 no epoch. Numbers that may exceed 2^53 never reach Lua as numbers:
// counters go through HINCRBY, revisions, versions and milliseconds stay
// far below it.

const luaHeader = `
local K_REV, K_VAL, K_META, K_IDX, K_EXP, K_EV, K_BYTES, K_EPOCH, K_SCRATCH =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local function num(n) return string.format('%.0f', n) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse(m)
  local v, e, l = struct.unpack('>I8I8I4', m)
  return v, e, l
end
local function meta(v, e, l) return struct.pack('>I8I8I4', v, e, l) end
local function head() return redis.call('GET', K_REV) or '0' end
-- bulk runs cmd on key with args in slices of at most 1000 (Lua's unpack
-- has a limit of a few thousand values).
local function bulk(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end
`

// luaEpoch starts every script but init.
const luaEpoch = `
if redis.call('EXISTS', K_EPOCH) == 0 then return {-1} end
`

// luaEvent collects the script's events into chunks, each one stream
// entry: up to 1000 changes or about 1 MiB of keys and values (a single
// larger value is a chunk of its own). Nothing is written until finish,
// which appends the chunks and trims the stream to the retention (ARGV[1]
// in every write script) by whole stream nodes, never below it; so a
// script may collect events before it knows it will succeed.
//
// An entry's fields, by position: "f", the chunk's first revision; "h",
// the events' headers, 17 bytes each (struct '>BI8I8': type 1 PUT, 2
// DELETE, 3 EXPIRE, 4 TTL; version; expiry); then one pair per event, the
// key and the value (empty but for a PUT). The keys and values go to XADD
// as they are: building one string of them in Lua would cost about 10 ns
// a byte.
const luaEvent = `
local RETAIN = tonumber(ARGV[1])
local chunks, cur, clast = {}, nil, 0
local function event(rev, t, k, v, ver, exp)
  if cur == nil then
    cur = {first = rev, n = 0, size = 0, h = {}, p = {}}
    chunks[#chunks + 1] = cur
  end
  local n = cur.n
  local h, p = cur.h, cur.p
  h[3 * n + 1], h[3 * n + 2], h[3 * n + 3] = t, ver, exp
  p[2 * n + 1], p[2 * n + 2] = k, v
  cur.n, cur.size, cur.last = n + 1, cur.size + #k + #v, rev
  clast = rev
  if cur.n >= 1000 or cur.size >= 1048576 then cur = nil end
end
local function finish()
  for i = 1, #chunks do
    local c = chunks[i]
    local hdr = struct.pack('>' .. string.rep('BI8I8', c.n), unpack(c.h))
    redis.call('XADD', K_EV, num(c.last) .. '-0', 'f', num(c.first), 'h', hdr, unpack(c.p))
  end
  if clast > RETAIN then
    redis.call('XTRIM', K_EV, 'MINID', '~', num(clast - RETAIN + 1) .. '-0')
  end
end
`

func readScript(body string) *goredis.Script {
	return goredis.NewScript("#!lua flags=no-writes\n" + luaHeader + luaEpoch + body)
}

func writeScript(body string) *goredis.Script {
	return goredis.NewScript("#!lua\n" + luaHeader + luaEpoch + luaEvent + body)
}

// scriptInit makes sure the store has an epoch and that its revision is
// at least ARGV[2] (the highest revision this process has seen) and the
// last revision in the stream: a Redis that lost its data, or a replica
// promoted before it had every write, must not hand out revisions again.
// ARGV[1] is the random part of the epoch to set when there is none; its
// base, the first revision the new history can hold, is the revision
// after the one the store then continues from. Reply: {epoch, revision,
// changed}.
var scriptInit = goredis.NewScript("#!lua\n" + luaHeader + `
local changed = 0
local rev = tonumber(head())
local want = tonumber(ARGV[2])
local top = redis.call('XREVRANGE', K_EV, '+', '-', 'COUNT', 1)
if #top > 0 then
  local t = tonumber(string.match(top[1][1], '^(%d+)'))
  if t > want then want = t end
end
if rev < want then
  redis.call('SET', K_REV, num(want))
  rev = want
  changed = 1
end
local ep = redis.call('GET', K_EPOCH)
if not ep then
  ep = ARGV[1] .. ':' .. num(rev + 1)
  redis.call('SET', K_EPOCH, ep)
  changed = 1
end
return {ep, num(rev), changed}
`)

// scriptPut: ARGV retention, key, value, ttl ms, condition ("n", "a",
// "v"), version. Reply {0, rev, expires_at} or {1, current}.
var scriptPut = writeScript(`
local key, val = ARGV[2], ARGV[3]
local ttl, ck, cv = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local now = now_ms()
local m = redis.call('HGET', K_META, key)
local cur, oe, ol = 0, 0, 0
if m then
  local v, e, l = parse(m)
  oe, ol = e, l
  if e == 0 or e > now then cur = v end
end
if (ck == 'a' and cur ~= 0) or (ck == 'v' and cur ~= cv) then return {1, cur} end
local rev = redis.call('INCR', K_REV)
local exp = 0
if ttl > 0 then exp = now + ttl end
redis.call('HSET', K_VAL, key, val)
redis.call('HSET', K_META, key, meta(rev, exp, #val))
if m then
  if #val ~= ol then redis.call('INCRBY', K_BYTES, #val - ol) end
else
  redis.call('ZADD', K_IDX, '0', key)
  redis.call('INCRBY', K_BYTES, #key + #val)
end
if exp > 0 then
  redis.call('ZADD', K_EXP, exp, key)
elseif oe > 0 then
  redis.call('ZREM', K_EXP, key)
end
event(rev, 1, key, val, rev, exp)
finish()
return {0, rev, exp}
`)

// scriptDelete: ARGV retention, key, condition ("n", "v"), version.
// An expired key is left for cleanup. Reply {0, deleted, rev} or {1,
// current}.
var scriptDelete = writeScript(`
local key = ARGV[2]
local now = now_ms()
local m = redis.call('HGET', K_META, key)
local cur, oe, ol = 0, 0, 0
if m then
  local v, e, l = parse(m)
  if e == 0 or e > now then cur, oe, ol = v, e, l end
end
if ARGV[3] == 'v' and cur ~= tonumber(ARGV[4]) then return {1, cur} end
if cur == 0 then return {0, 0, head()} end
local rev = redis.call('INCR', K_REV)
redis.call('HDEL', K_VAL, key)
redis.call('HDEL', K_META, key)
redis.call('ZREM', K_IDX, key)
if oe > 0 then redis.call('ZREM', K_EXP, key) end
redis.call('INCRBY', K_BYTES, -(#key + ol))
event(rev, 2, key, '', cur, 0)
finish()
return {0, 1, rev}
`)

// scriptIncrement: ARGV retention, key, delta. The stored text must be
// what strconv.ParseInt accepts in base 10 (an optional sign, digits); it
// is normalised and added to with HINCRBY on the scratch hash, so the
// arithmetic is Redis's exact int64 with its overflow check. Reply {0,
// rev, new value, expires_at}, {3, value's first bytes} or {4, value}.
var scriptIncrement = writeScript(`
local key = ARGV[2]
local now = now_ms()
local m = redis.call('HGET', K_META, key)
local base, exp, oe, ol, live = '0', 0, 0, 0, false
if m then
  local _, e, l = parse(m)
  oe, ol = e, l
  if e == 0 or e > now then live = true; exp = e end
end
if live then
  local raw = redis.call('HGET', K_VAL, key) or ''
  local sign, digits = string.match(raw, '^([+-]?)(%d+)$')
  if not digits then return {3, string.sub(raw, 1, 64)} end
  digits = string.gsub(digits, '^0+', '')
  if digits == '' then digits = '0' end
  if #digits > 19 then return {3, string.sub(raw, 1, 64)} end
  if sign == '-' and digits ~= '0' then base = '-' .. digits else base = digits end
end
redis.call('HSET', K_SCRATCH, 'n', base)
local r = redis.pcall('HINCRBY', K_SCRATCH, 'n', ARGV[3])
if type(r) == 'table' and r.err then
  redis.call('HDEL', K_SCRATCH, 'n')
  if string.find(r.err, 'overflow', 1, true) then return {4, base} end
  return {3, base}
end
local val = redis.call('HGET', K_SCRATCH, 'n')
redis.call('HDEL', K_SCRATCH, 'n')
local rev = redis.call('INCR', K_REV)
redis.call('HSET', K_VAL, key, val)
redis.call('HSET', K_META, key, meta(rev, exp, #val))
if m then
  if #val ~= ol then redis.call('INCRBY', K_BYTES, #val - ol) end
else
  redis.call('ZADD', K_IDX, '0', key)
  redis.call('INCRBY', K_BYTES, #key + #val)
end
if not live and oe > 0 then redis.call('ZREM', K_EXP, key) end
event(rev, 1, key, val, rev, exp)
finish()
return {0, rev, val, exp}
`)

// scriptRefresh: ARGV retention, key, ttl ms, condition ("n", "v"),
// version. Reply {0, rev, version, expires_at}, {1, current} or {2}.
var scriptRefresh = writeScript(`
local key = ARGV[2]
local now = now_ms()
local m = redis.call('HGET', K_META, key)
if not m then return {2} end
local v, e, l = parse(m)
if e ~= 0 and e <= now then return {2} end
if ARGV[4] == 'v' and v ~= tonumber(ARGV[5]) then return {1, v} end
local ttl = tonumber(ARGV[3])
local exp = 0
if ttl > 0 then exp = now + ttl end
local rev = redis.call('INCR', K_REV)
redis.call('HSET', K_META, key, meta(v, exp, l))
if exp > 0 then
  redis.call('ZADD', K_EXP, exp, key)
elseif e > 0 then
  redis.call('ZREM', K_EXP, key)
end
event(rev, 4, key, '', v, exp)
finish()
return {0, rev, v, exp}
`)

// scriptBatch: ARGV retention, then three per op: a header
// (struct '>BBI8I8': kind 1 put or 2 delete, condition 0 none, 1 absent
// or 2 version, ttl ms, version), the key and the value. The ops are
// planned in order against an overlay of the batch's own changes, their
// events collected, nothing written, so a failed condition leaves no
// trace; then every key's final state is written in bulk and the events
// appended. Reply {0, rev, {rev, expires_at, deleted} per op} or {1,
// current, op index}.
var scriptBatch = writeScript(`
local now = now_ms()
local nops = (#ARGV - 1) / 3
local keys = {}
for i = 1, nops do keys[i] = ARGV[i * 3] end
local orig = {}
for i = 1, nops, 1000 do
  local j = math.min(i + 999, nops)
  local part = redis.call('HMGET', K_META, unpack(keys, i, j))
  for x = 1, #part do
    local k = keys[i + x - 1]
    if orig[k] == nil then orig[k] = part[x] end
  end
end
local r0 = tonumber(head())
local r = r0
-- ov[key]: the op index of the batch's last put of key, or -1 when the
-- batch deleted it; pv[i], pe[i]: that put's version and expiry.
local ov, pv, pe, res = {}, {}, {}, {}
for i = 0, nops - 1 do
  local kind, ck, ttl, cv = struct.unpack('>BBI8I8', ARGV[2 + i * 3])
  local key = ARGV[3 + i * 3]
  local cur = 0
  local o = ov[key]
  if o then
    if o >= 0 then cur = pv[o] end
  elseif orig[key] then
    local v, e = parse(orig[key])
    if e == 0 or e > now then cur = v end
  end
  if (ck == 1 and cur ~= 0) or (ck == 2 and cur ~= cv) then return {1, cur, i} end
  local b = i * 3
  if kind == 1 then
    r = r + 1
    local exp = 0
    if ttl > 0 then exp = now + ttl end
    ov[key], pv[i], pe[i] = i, r, exp
    res[b + 1], res[b + 2], res[b + 3] = r, exp, 0
    event(r, 1, key, ARGV[4 + i * 3], r, exp)
  elseif cur ~= 0 then
    r = r + 1
    ov[key] = -1
    res[b + 1], res[b + 2], res[b + 3] = r, 0, 1
    event(r, 2, key, '', cur, 0)
  else
    res[b + 1], res[b + 2], res[b + 3] = 0, 0, 0
  end
end
if r == r0 then return {0, num(r0), res} end
local hv, hm, hd, zi, zri, zx, zrx = {}, {}, {}, {}, {}, {}, {}
local dbytes = 0
for key, o in pairs(ov) do
  local m = orig[key]
  local oe, ol = 0, 0
  if m then
    local _, e, l = parse(m)
    oe, ol = e, l
  end
  if o < 0 then
    if m then
      hd[#hd + 1] = key
      zri[#zri + 1] = key
      if oe > 0 then zrx[#zrx + 1] = key end
      dbytes = dbytes - #key - ol
    end
  else
    local val, exp = ARGV[4 + o * 3], pe[o]
    local n = #hv
    hv[n + 1], hv[n + 2] = key, val
    hm[n + 1], hm[n + 2] = key, meta(pv[o], exp, #val)
    if m then
      dbytes = dbytes + #val - ol
    else
      n = #zi
      zi[n + 1], zi[n + 2] = '0', key
      dbytes = dbytes + #key + #val
    end
    if exp > 0 then
      n = #zx
      zx[n + 1], zx[n + 2] = exp, key
    elseif oe > 0 then
      zrx[#zrx + 1] = key
    end
  end
end
bulk('HSET', K_VAL, hv)
bulk('HSET', K_META, hm)
bulk('HDEL', K_VAL, hd)
bulk('HDEL', K_META, hd)
bulk('ZADD', K_IDX, zi)
bulk('ZREM', K_IDX, zri)
bulk('ZADD', K_EXP, zx)
bulk('ZREM', K_EXP, zrx)
redis.call('SET', K_REV, num(r))
if dbytes ~= 0 then redis.call('INCRBY', K_BYTES, dbytes) end
finish()
return {0, num(r), res}
`)

// scriptDeletePrefix: ARGV retention, lo, hi. Every live key in the
// range, in byte order, each with its own revision. Reply {0, deleted,
// rev}.
var scriptDeletePrefix = writeScript(`
local now = now_ms()
local lo, hi = ARGV[2], ARGV[3]
local dk, dv, dx = {}, {}, {}
local dbytes = 0
while true do
  local batch = redis.call('ZRANGE', K_IDX, lo, hi, 'BYLEX', 'LIMIT', 0, 1000)
  if #batch == 0 then break end
  local ms = redis.call('HMGET', K_META, unpack(batch))
  for i = 1, #batch do
    if ms[i] then
      local v, e, l = parse(ms[i])
      if e == 0 or e > now then
        local k = batch[i]
        dk[#dk + 1] = k
        dv[#dv + 1] = v
        if e > 0 then dx[#dx + 1] = k end
        dbytes = dbytes + #k + l
      end
    end
  end
  if #batch < 1000 then break end
  lo = '(' .. batch[#batch]
end
local n = #dk
if n == 0 then return {0, 0, head()} end
local r0 = tonumber(head())
bulk('HDEL', K_VAL, dk)
bulk('HDEL', K_META, dk)
bulk('ZREM', K_IDX, dk)
bulk('ZREM', K_EXP, dx)
redis.call('SET', K_REV, num(r0 + n))
redis.call('INCRBY', K_BYTES, -dbytes)
for i = 1, n do event(r0 + i, 2, dk[i], '', dv[i], 0) end
finish()
return {0, n, num(r0 + n)}
`)

// scriptCleanup: ARGV retention, limit (1 to 1000). Removes up to limit
// keys whose expiry has passed on the server's clock, soonest expiry
// first, each with an EXPIRE event and its own revision. Two hosts that
// run it at once each remove different keys: a script runs alone, and a
// removed key is gone from the expiry set. Reply {0, removed, rev}.
var scriptCleanup = writeScript(`
local now = now_ms()
local ks = redis.call('ZRANGE', K_EXP, '-inf', now, 'BYSCORE', 'LIMIT', 0, ARGV[2])
if #ks == 0 then return {0, 0, head()} end
local ms = redis.call('HMGET', K_META, unpack(ks))
local dk, dv, stray = {}, {}, {}
local dbytes = 0
for i = 1, #ks do
  local k = ks[i]
  local v, e, l = 0, 0, 0
  if ms[i] then v, e, l = parse(ms[i]) end
  if e > 0 and e <= now then
    dk[#dk + 1] = k
    dv[#dv + 1] = v
    dbytes = dbytes + #k + l
  elseif e > 0 then
    redis.call('ZADD', K_EXP, e, k) -- an index entry that disagrees with the key: the key is right
  else
    stray[#stray + 1] = k
  end
end
bulk('ZREM', K_EXP, stray)
local n = #dk
if n == 0 then return {0, 0, head()} end
local r0 = tonumber(head())
bulk('HDEL', K_VAL, dk)
bulk('HDEL', K_META, dk)
bulk('ZREM', K_IDX, dk)
bulk('ZREM', K_EXP, dk)
redis.call('SET', K_REV, num(r0 + n))
redis.call('INCRBY', K_BYTES, -dbytes)
for i = 1, n do event(r0 + i, 3, dk[i], '', dv[i], 0) end
finish()
return {0, n, num(r0 + n)}
`)
